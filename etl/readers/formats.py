"""The registry: every format module's SPEC, in the order `--format auto` sniffs them.

A format module declares its name, reader, file patterns, sniff and options in one `SPEC` (etl.readers.registry);
a new format is its module plus one line here. Sniffing stops at the first format whose sniff claims the file, so
formats with specific marks come before the generic containers they resemble (CTR-GCN .npz before npz, DD-Net
pickles before pyskl, MMPose/YOLO/MediaPipe/Kinetics JSON before COCO/OpenPose JSON).
"""

from __future__ import annotations

from etl.readers import (
    coco_json,
    dlc,
    h5,
    jhmdb_ddnet,
    kinetics_skeleton,
    mediapipe,
    mmpose_json,
    npz,
    ntu_skeleton,
    openpose_json,
    penn_action,
    pyskl,
    sleap_csv,
    stgcn_npy,
    utd_mhad,
    yolo_pose,
)
from etl.readers.registry import FormatSpec

SNIFF_ORDER: tuple[FormatSpec, ...] = (
    ntu_skeleton.SPEC,
    mmpose_json.SPEC,
    yolo_pose.SPEC,
    stgcn_npy.SPEC,
    dlc.SPEC,
    sleap_csv.SPEC,
    mediapipe.SPEC,
    kinetics_skeleton.SPEC,
    jhmdb_ddnet.SPEC,
    pyskl.SPEC,
    h5.SPEC,
    npz.SPEC,
    utd_mhad.SPEC,
    penn_action.SPEC,
    coco_json.SPEC,
    openpose_json.SPEC,
)
# the --format names in the order the documentation lists them (the order formats were added)
FORMAT_ORDER = (
    "pyskl",
    "coco-json",
    "openpose-json",
    "h5",
    "npz",
    "penn-action",
    "jhmdb-ddnet",
    "utd-mhad",
    "ntu-skeleton",
    "stgcn-npy",
    "kinetics-skeleton",
    "mmpose-json",
    "yolo-pose",
    "mediapipe",
    "dlc",
    "sleap-csv",
)
SPECS: dict[str, FormatSpec] = {spec.name: spec for spec in SNIFF_ORDER}
