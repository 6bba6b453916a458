"""Video decoding (etl/video/decode.py): frame times from the frames, and one ActrecError line per bad file."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures_video import need, write_video

from etl.common.errors import ActrecError

av = need("av")
from etl.video.decode import frames, probe  # noqa: E402


def test_times_come_from_the_frames_not_from_the_index(tmp_path):
    times = [0.0, 0.04, 0.1, 0.2, 0.21, 0.3, 0.5, 0.52]  # variable frame timing
    video = write_video(tmp_path / "vfr.mp4", len(times), times=times)
    decoded = list(frames(video))
    assert [f.index for f in decoded] == list(range(len(times)))
    assert [round(f.time, 3) for f in decoded] == times
    assert decoded[0].rgb.shape == (64, 96, 3)
    assert decoded[0].rgb.flags.c_contiguous
    info = probe(video)
    assert (info.width, info.height, info.n_frames, info.codec) == (96, 64, len(times), "mpeg4")


def test_a_file_that_is_no_video(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("these are my notes, not a video")
    with pytest.raises(ActrecError, match=r"notes\.mp4: not a readable video"):
        probe(path)


def test_a_truncated_mp4_has_no_video_stream(tmp_path):
    whole = write_video(tmp_path / "whole.mp4", 20).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole[: len(whole) // 2])  # an MP4's index (moov) is written last: it is cut off
    with pytest.raises(ActrecError, match=r"cut\.mp4: no video stream .*truncated"):
        list(frames(cut))


def test_a_truncated_mkv_decodes_only_its_start_and_is_refused(tmp_path):
    whole = write_video(tmp_path / "whole.mkv", 30).read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole[: len(whole) // 2])  # the header still declares 1.2 s
    with pytest.raises(
        ActrecError, match=r"cut\.mkv: truncated video, the frames end at 0\.\d+ s of the 1\.20 s"
    ):
        list(frames(cut))


def test_zero_frames(tmp_path):
    path = tmp_path / "empty.avi"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height = 32, 32
        container.start_encoding()
    with pytest.raises(ActrecError, match=r"empty\.avi: the video stream holds no decodable frame"):
        list(frames(path))


def test_a_file_ending_before_its_first_frame(tmp_path):
    path = tmp_path / "empty.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height = 32, 32
        container.start_encoding()
    with pytest.raises(ActrecError, match=r"empty\.mkv: the file ends before its first frame"):
        probe(path)


def test_an_unsupported_codec(tmp_path):
    data = write_video(tmp_path / "ok.mkv", 5).read_bytes()
    assert data.count(b"V_MPEG4/ISO/ASP") == 1
    path = tmp_path / "odd.mkv"
    path.write_bytes(data.replace(b"V_MPEG4/ISO/ASP", b"V_QQQQQ/ISO/ASP"))  # a codec id FFmpeg does not know
    with pytest.raises(ActrecError, match=r"odd\.mkv: unsupported video codec"):
        probe(path)


def test_audio_only(tmp_path):
    path = tmp_path / "sound.mka"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000, layout="mono")
        sound = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        sound.sample_rate, sound.pts = 8000, 0
        for packet in [*stream.encode(sound), *stream.encode()]:
            container.mux(packet)
    with pytest.raises(ActrecError, match=r"sound\.mka: no video stream"):
        probe(path)
