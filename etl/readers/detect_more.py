"""`--format auto` for the formats added beside the first eight: told from the suffix, the file name or a cheap
look at the first bytes. None means "not one of these": `detect` goes on with the older rules.
"""

from __future__ import annotations

from pathlib import Path

from etl.readers.dlc import is_dlc_h5
from etl.readers.stgcn_npy import is_ctrgcn_npz

_PEEK_BYTES = 64 * 1024


def detect_new_format(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix == ".skeleton":
        return "ntu-skeleton"
    if suffix == ".txt" and "missing_skeleton" in path.name.lower():
        return "ntu-skeleton"
    if suffix == ".txt" and _is_yolo_txt(peek_text(path, 4096)):
        return "yolo-pose"
    if suffix == ".npy":
        return "stgcn-npy"
    if suffix == ".npz" and is_ctrgcn_npz(path):
        return "stgcn-npy"
    if suffix in (".h5", ".hdf5") and is_dlc_h5(path):
        return "dlc"
    if suffix == ".json":
        return _detect_json(peek_text(path).lstrip())
    if suffix == ".csv":
        return _detect_csv(peek_text(path, 4096))
    return None


def _detect_csv(head: str) -> str | None:
    lines = head.splitlines()
    first = lines[0].strip().lower() if lines else ""
    if first.startswith("scorer,"):
        return "dlc"  # DeepLabCut: header rows scorer / [individuals] / bodyparts / coords
    columns = {c.strip() for c in first.split(",")}
    if "visibility" in first or {"landmark", "x", "y"} <= columns or {"nose_x", "nose_y"} <= columns:
        return "mediapipe"
    return None


def _detect_json(head: str) -> str | None:
    if head.startswith("{") and '"instance_info"' in head:
        return "mmpose-json"
    if head.startswith("[") and (
        ('"instances"' in head and '"frame_id"' in head) or '"keypoint_scores"' in head
    ):
        return "mmpose-json"
    if head.startswith("[") and '"keypoints"' in head and '"visible"' in head:
        return "yolo-pose"
    if (
        '"landmarks"' in head
        or '"pose_landmarks"' in head
        or (head.startswith("[") and '"visibility"' in head)
    ):
        return "mediapipe"
    if head.startswith("{") and '"data"' in head and ('"skeleton"' in head or '"label_index"' in head):
        return "kinetics-skeleton"
    return None


def peek_text(path: Path, n_bytes: int = _PEEK_BYTES) -> str:
    """The first `n_bytes` of a file as text ('' when it cannot be read)."""
    try:
        with open(path, "rb") as f:
            return f.read(n_bytes).decode("utf-8-sig", errors="replace")
    except OSError:
        return ""


def _is_yolo_txt(head: str) -> bool:
    """A line of numbers, an integer class first, at least a box and two keypoints: a YOLO label file."""
    lines = head.splitlines()
    first = next((line.split() for line in lines if line.strip()), None)
    if first is None or len(first) < 11 or not first[0].isdigit():
        return False
    try:
        [float(v) for v in first]
    except ValueError:
        return False
    return True
