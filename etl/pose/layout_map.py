"""Joint names -> joint indices: read a file's own joint order by name, and map one layout onto another.

Names are compared after `canonical_joint_name` (lower case, `_` for spaces and dashes, `l_`/`r_` prefixes
spelled out, a few true synonyms, and the aliases a layout lists per joint), so `Left Eye`, `left-eye` and `l_eye` are the same joint. Nothing is inferred:
a target joint without a source joint of the same name is missing, and the mapping is refused.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import numpy as np

from etl.common.errors import ActrecError
from etl.pose.clip import PoseClip
from etl.pose.skeleton import LAYOUTS, Layout

# names that different datasets give to the same point
_SYNONYMS = {
    "root": "pelvis",
    "hip": "pelvis",  # Halpe's and Human3.6M's 'hip' is the mid-hip point
    "mid_hip": "pelvis",
    "midhip": "pelvis",
    "neck_base": "neck",
    "lefteye": "left_eye",
    "righteye": "right_eye",
}
_SEPARATORS = re.compile(r"[\s\-]+")


def canonical_joint_name(name: str) -> str:
    key = _SEPARATORS.sub("_", str(name).strip().lower())
    if key.startswith("l_"):
        key = "left_" + key[2:]
    elif key.startswith("r_"):
        key = "right_" + key[2:]
    return _SYNONYMS.get(key, key)


def joint_indices(source_names: Sequence[str], target: Layout) -> tuple[list[int] | None, list[str]]:
    """(source index of every target joint, []) when each target joint has a source joint of the same name,
    else (None, the target joints without one)."""
    where: dict[str, int] = {}
    for i, name in enumerate(source_names):
        where.setdefault(canonical_joint_name(name), i)
    indices, missing = [], []
    for name in target.joints:
        # the joint's own name first, then its aliases (etl.pose.skeleton.Layout.aliases)
        i = next(
            (where[key] for key in map(canonical_joint_name, target.names_of(name)) if key in where), None
        )
        if i is None:
            missing.append(name)
        else:
            indices.append(i)
    return (None, missing) if missing else (indices, [])


def matching_layouts(names: Sequence[str]) -> list[str]:
    """The layouts whose joints are exactly `names`, in this order."""
    identity = list(range(len(names)))
    return [
        lay.name
        for lay in LAYOUTS.values()
        if lay.n_joints == len(names) and joint_indices(names, lay)[0] == identity
    ]


def layout_mapping(source: Layout, target: Layout) -> list[int]:
    """Source joint index of every target joint; ActrecError listing the target joints `source` lacks."""
    indices, missing = joint_indices(source.joints, target)
    if indices is None:
        raise ActrecError(
            f"cannot map layout {source.name} onto {target.name}: {source.name} has no joint named "
            f"{', '.join(missing)} ({len(missing)} of {target.n_joints} {target.name} joints missing)"
        )
    return indices


def remap_clip(clip: PoseClip, indices: Sequence[int]) -> PoseClip:
    """The clip with joints `indices` of the source, in that order (keypoints (M, T, V', 2), scores (M, T, V'))."""
    idx = np.asarray(indices, dtype=np.intp)
    return dataclasses.replace(
        clip,
        keypoints=np.ascontiguousarray(clip.keypoints[:, :, idx]),
        scores=np.ascontiguousarray(clip.scores[:, :, idx]),
        keypoints3d=None if clip.keypoints3d is None else np.ascontiguousarray(clip.keypoints3d[:, :, idx]),
    )
