"""Pose extraction speed (`actrec-etl extract`) against decoding alone, in the same run, on the shared video.

    .venv/bin/python bench/bench_extract.py [--video ../shared/videos/sports2d_demo.mp4] [--repeats 3]

Decoding alone = PyAV frames converted to RGB arrays (what extraction feeds the backend); extraction = decoding +
the mediapipe backend (BlazePose full, CPU) + tracking + writing the pose file. Also the share of frames in which
a person was found. Needs the video extra (`pip install 'actrec[video]'`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from common import command_line, emit  # noqa: E402

from etl.video.decode import frames, probe  # noqa: E402
from etl.video.extract import extract_video  # noqa: E402
from etl.video.options import ExtractOptions  # noqa: E402

DEFAULT_VIDEO = ROOT.parent / "shared" / "videos" / "sports2d_demo.mp4"


def decode_seconds(video: Path) -> tuple[float, int]:
    start = time.perf_counter()
    n = sum(1 for _ in frames(video))
    return time.perf_counter() - start, n


def extract_seconds(video: Path, options: ExtractOptions):
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = extract_video(video, Path(tmp) / "poses.npz", options)
        return time.perf_counter() - start, result


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write-doc", default=None, help="also write the markdown section here")
    args = parser.parse_args(argv)
    info = probe(args.video)
    load_before = os.getloadavg()[0]
    decode, extract, result = [], [], None
    for _ in range(args.repeats):  # interleaved, so a host stall hits both alike
        seconds, n = decode_seconds(args.video)
        decode.append(n / seconds)
        seconds, result = extract_seconds(args.video, ExtractOptions())
        extract.append(result.n_frames / seconds)
    load_after = os.getloadavg()[0]
    dec, ext = statistics.median(decode), statistics.median(extract)
    md = "\n".join(
        [
            "## Pose extraction from a video (`bench/bench_extract.py`)",
            "",
            f"`{args.video.name}`: {info.width}x{info.height} {info.codec}, {result.n_frames} frames, "
            f"{info.fps:.0f} frames/s; median of {args.repeats} runs, load average {load_before:.1f} before, "
            f"{load_after:.1f} after. Command: `{command_line('bench_extract.py', argv)}`.",
            "",
            "| what | frames/s | ms per frame |",
            "|---|---|---|",
            f"| decoding alone (PyAV -> RGB arrays) | {dec:.1f} | {1000 / dec:.1f} |",
            f"| extraction, backend mediapipe (decode + BlazePose full + tracking + write) | {ext:.1f} | "
            f"{1000 / ext:.1f} |",
            f"| the backend's share (extraction - decoding) | | {1000 / ext - 1000 / dec:.1f} |",
            "",
            f"A person was found in {result.n_with_person} of {result.n_frames} frames "
            f"({100 * result.n_with_person / result.n_frames:.0f}%); {result.n_persons} tracks written "
            "(MediaPipe follows one person at a time; when it switches to another, the tracker starts a new "
            "track). The `onnx` backend runs the user's model: no model ships with actrec, so it is not timed here.",
            "",
        ]
    )
    emit(md, args.write_doc)
    return md


if __name__ == "__main__":
    main()
