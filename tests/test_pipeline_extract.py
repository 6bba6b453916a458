"""The DVC pipeline's `extract` stage (videos -> data/poses), run as dvc.yaml writes it on a copy of the repository.

Default params (data/videos holds only its README): the stage's command makes an empty data/poses without the
video extra, so the demo's `dvc repro` needs neither PyAV nor mediapipe. A real video: extract -> ingest chained
by DVC through data/poses, as docs/pipeline.md ("Your own videos") tells a user to set the params.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import SHARED
from test_pipeline import commit, copy_repo, dvc, ran_stages, set_params

# runs `actrec-etl ARGS` from the copy's own etl/ (sys.path[0] = the working folder) with the video extra's
# modules unimportable: an import of av, mediapipe or cv2 raises ImportError as if the extra were not installed
WITHOUT_VIDEO_EXTRA = (
    "import sys; sys.modules.update(dict.fromkeys(('av', 'mediapipe', 'cv2'), None)); "
    "from etl.cli import app; app(prog_name='actrec-etl')"
)


def stage_command(repo: Path, stage: str) -> list[str]:
    """The stage's command as DVC renders it from dvc.yaml and params.yaml (`dvc repro --dry` runs nothing)."""
    done = dvc("repro", "--dry", "--single-item", stage, cwd=repo)
    found = re.search(rf"Running stage '{stage}':\n> (.+)", done.stdout)
    assert found, done.stdout
    return shlex.split(found.group(1))


def test_the_default_extract_stage_makes_an_empty_pose_folder_without_the_video_extra(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    dvc("config", "--local", "core.site_cache_dir", str(tmp_path / "dvc-site-cache"), cwd=repo)
    commit(repo, "copy")
    argv = stage_command(repo, "extract")
    assert argv[:3] == ["actrec-etl", "extract", "data/videos"]
    assert "--allow-empty" in argv
    assert "--model" not in argv  # flags.model: [] leaves the option out
    # the folder holds its README and nothing DVC or the stage would read as a video
    assert [p.name for p in (repo / "data" / "videos").iterdir()] == ["README.md"]
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_VIDEO_EXTRA, *argv[1:]],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (repo / "data" / "poses").is_dir()
    assert list((repo / "data" / "poses").iterdir()) == []
    assert "nothing extracted into data/poses" in done.stdout + done.stderr


def test_the_extract_stage_is_an_ingest_source_in_the_docs():
    """docs/pipeline.md names every param a user changes to start from videos, with the values dvc.yaml needs."""
    root = Path(__file__).resolve().parents[1]
    doc = (root / "docs" / "pipeline.md").read_text()
    section = doc.split("\n## Your own videos", 1)[1].split("\n## ", 1)[0]
    extract_out = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]["extract"]["outs"]
    assert extract_out == ["data/poses"]
    for needed in ("extract.videos", "ingest.sources: data/poses", "ingest.format: npz", "ingest.flags"):
        assert needed in section, needed


@pytest.mark.slow
@pytest.mark.shared
def test_a_video_through_extract_and_ingest(tmp_path):
    """`dvc repro ingest` with the params docs/pipeline.md gives: DVC runs extract on a video outside the
    repository, then ingest on its pose files; the keypoint store holds the clip with its label."""
    # the video extra is optional (`pip install 'actrec[video]'`), as in the other video tests; CI installs it
    # (.ci/run: EXTRAS=dev,video), so there this test runs
    pytest.importorskip("av")
    pytest.importorskip("mediapipe")
    from etl.stores.keypoint_store import KeypointStore

    video = SHARED / "videos" / "sports2d_demo.mp4"
    repo = copy_repo(tmp_path / "repo")
    dvc("config", "--local", "core.site_cache_dir", str(tmp_path / "dvc-site-cache"), cwd=repo)
    (repo / "data" / "labels.csv").write_text("clip_id,label_name,split\nsports2d_demo,sports,test\n")
    set_params(
        repo, {"extract": {"videos": str(video)}, "ingest": {"sources": "data/poses", "format": "npz"}}
    )
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["ingest"]["flags"]["labels"] = ["data/labels.csv"]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    commit(repo, "my videos")

    done = dvc("repro", "ingest", cwd=repo)
    assert ran_stages(done.stdout) == {"extract", "ingest"}, done.stdout
    assert [p.name for p in (repo / "data" / "poses").iterdir()] == ["sports2d_demo.npz"]
    store = KeypointStore.open(repo / "data" / "keypoints.zarr")
    assert len(store) == 1
    clip = store.table.iloc[0]
    assert (clip["clip_id"], clip["label_name"], clip["split"]) == ("sports2d_demo", "sports", "test")
    assert int(clip["n_frames"]) == 230
    assert store.layout.name == "coco17"
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert str(video) in [d["path"] for d in lock["extract"]["deps"]]
    assert "data/poses" in [d["path"] for d in lock["ingest"]["deps"]]
    # the two stages it ran (the rest of the demo pipeline was never reproduced in this copy)
    assert "Data and pipelines are up to date" in dvc("status", "extract", "ingest", cwd=repo).stdout
