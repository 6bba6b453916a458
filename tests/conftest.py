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
