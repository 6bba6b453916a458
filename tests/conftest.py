"""Shared test set-up: numba cache, DVC index location, and the `shared` marker for ../shared datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(config, items):
    if SHARED.joinpath("data").is_dir():
        return
    if _in_ci():
        raise pytest.UsageError(f"CI=true but {SHARED} is missing: the shared datasets are required in CI")
    skip = pytest.mark.skip(reason=f"{SHARED}/data not present (a user's clone)")
    for item in items:
        if "shared" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return SHARED


@pytest.fixture(scope="session")
def anchor_dump():
    import numpy as np

    path = SHARED / "anchor" / "anchor_dump.npz"
    return np.load(path)


@pytest.fixture
def one_torch_thread():
    """Graph-network tests: their tiny convolutions stall on a busy shared CPU with more than one thread (seconds
    instead of ms)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """A small synthetic demo dataset (COCO keypoint-result JSON + manifest): 8 actions x 2 subjects x 2 reps."""
    from etl.commands.demo_data import generate_demo_data

    out = tmp_path_factory.mktemp("demo") / "demo"
    generate_demo_data(out, n_subjects=2, reps=2, seed=3)
    return out


@pytest.fixture(scope="session")
def keypoint_store(demo_dir, tmp_path_factory) -> Path:
    from etl.commands.ingest import ingest
    from etl.pose.skeleton import get_layout
    from etl.readers import ReadOptions

    out = tmp_path_factory.mktemp("kp") / "keypoints.zarr"
    ingest(
        [demo_dir / "clips"],
        out=out,
        fmt="coco-json",
        options=ReadOptions(layout=get_layout("coco17"), labels_csv=demo_dir / "clips.csv"),
    )
    return out


@pytest.fixture(scope="session")
def small_render():
    """joints+limbs at 32 px with small chunks and shards, so a tiny dataset still has several partitions."""
    from etl.heatmaps.spec import RenderSpec

    return RenderSpec(size=32, frames_per_chunk=8, chunks_per_shard=4)


@pytest.fixture(scope="session")
def heatmap_store(keypoint_store, small_render, tmp_path_factory) -> Path:
    from etl.commands.render import render

    out = tmp_path_factory.mktemp("hm") / "heatmaps.zarr"
    render(keypoint_store, out, small_render, threads=2)
    return out
