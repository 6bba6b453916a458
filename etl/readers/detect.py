"""`--format auto`: tell a source's format from file extensions and a cheap look at the content."""

from __future__ import annotations

import io
import pickletools
import re
from collections import deque
from pathlib import Path

import scipy.io

from etl.errors import ActrecError
from etl.readers.common import existing_inputs, natural_key
from etl.readers.detect_more import detect_new_format

_KNOWN_SUFFIXES = (
    ".pkl",
    ".pickle",
    ".json",
    ".h5",
    ".hdf5",
    ".npz",
    ".mat",
    ".skeleton",
    ".txt",
    ".npy",
    ".csv",
)
_PEEK_BYTES = 64 * 1024
_DDNET_NAME = re.compile(r"GT_(train|test)_\d+")


def detect_format(paths: list[Path]) -> str:
    """The format name every given path looks like; ActrecError when it cannot tell or the paths disagree."""
    existing = existing_inputs(paths)
    found: dict[str, list[Path]] = {}
    for path in existing:
        fmt = _detect_path(path)
        if fmt is None:
            raise ActrecError(
                f"cannot tell the format of {path}: expected .pkl, .json, .h5/.hdf5, .npz, .npy, .mat, .skeleton, "
                ".txt or .csv pose files (or folders of them); pass --format explicitly"
            )
        found.setdefault(fmt, []).append(path)
    if len(found) > 1:
        parts = "; ".join(f"{fmt}: {', '.join(map(str, ps))}" for fmt, ps in found.items())
        raise ActrecError(
            f"the input paths look like different formats ({parts}); ingest one format at a time"
        )
    return next(iter(found))


def _detect_path(path: Path) -> str | None:
    if path.is_dir():
        candidate = _first_candidate(path)
        return None if candidate is None else _detect_file(candidate)
    return _detect_file(path)


def _first_candidate(folder: Path) -> Path | None:
    """The first file with a known pose-file suffix, breadth first, in sorted order (cheap on large trees)."""
    queue = deque([folder])
    while queue:
        current = queue.popleft()
        try:
            entries = sorted(current.iterdir(), key=natural_key)
        except OSError:
            continue
        for entry in entries:
            if entry.is_file() and entry.suffix.lower() in _KNOWN_SUFFIXES:
                return entry
        queue.extend(entry for entry in entries if entry.is_dir())
    return None


def _detect_file(path: Path) -> str | None:
    suffix = path.suffix.lower()
    new = detect_new_format(path)  # the formats of etl.readers.detect_more, told before the older ones
    if new is not None:
        return new
    if suffix in (".pkl", ".pickle"):
        return "jhmdb-ddnet" if _DDNET_NAME.fullmatch(path.stem) or _is_ddnet_pickle(path) else "pyskl"
    if suffix in (".h5", ".hdf5"):
        return "h5"
    if suffix == ".npz":
        return "npz"
    if suffix == ".mat":
        return _detect_mat(path)
    if suffix == ".json":
        return _detect_json(path)
    return None


def _is_ddnet_pickle(path: Path) -> bool:
    """True when the pickle is a dict whose first key is 'pose' or 'label' (DD-Net), read from its first bytes."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    first_container = None
    try:
        for opcode, arg, _ in pickletools.genops(io.BytesIO(head)):
            if first_container is None and opcode.name in ("EMPTY_DICT", "DICT", "EMPTY_LIST", "LIST"):
                first_container = opcode.name
            if isinstance(arg, str) and ("UNICODE" in opcode.name or "STRING" in opcode.name):
                return first_container == "EMPTY_DICT" and arg in ("pose", "label")
    except Exception:  # the peek ends mid-stream: genops raises at the cut
        return False
    return False


def _detect_mat(path: Path) -> str | None:
    try:
        names = {name for name, _, _ in scipy.io.whosmat(path)}
    except Exception:
        return None
    if "d_skel" in names:
        return "utd-mhad"
    if {"x", "y", "visibility"} <= names:
        return "penn-action"
    return None


def _detect_json(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            head = f.read(_PEEK_BYTES).decode("utf-8-sig", errors="replace").lstrip()
    except OSError:
        return None
    if head.startswith("["):
        return "coco-json"
    if '"people"' in head:
        return "openpose-json"
    if '"annotations"' in head or '"images"' in head:
        return "coco-json"
    return None
