"""Files that name their joints (COCO `categories[].keypoints`, DeepLabCut body parts, SLEAP nodes, ...): read
them in the order of `--layout` by name, or refuse with both orders. A joint count that happens to match is
never taken as proof that the order matches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from etl.pose.layout_map import canonical_joint_name, joint_indices, matching_layouts
from etl.pose.skeleton import Layout
from etl.readers.common import ClipError


def order_for_layout(names: Sequence[str], layout: Layout, where: str) -> list[int] | None:
    """None when `names` are the layout's joints in its order; else the file index of every layout joint.

    ClipError listing both orders when some layout joint has no joint of that name in the file.
    """
    names = [str(n) for n in names]
    if [canonical_joint_name(n) for n in names] == [canonical_joint_name(n) for n in layout.joints]:
        return None
    indices, missing = joint_indices(names, layout)
    if indices is not None:
        return (
            None if indices == list(range(len(names))) else indices
        )  # aliases only: the order is the layout's
    fits = matching_layouts(names)
    hint = f"; --layout {' or '.join(fits)} matches the file" if fits else ""
    raise ClipError(
        f"{where} names joints that layout {layout.name!r} does not have in any order (no {', '.join(missing)} in "
        f"the file): file order: {', '.join(names)}; {layout.name} order: {', '.join(layout.joints)}{hint}"
    )


def coco_category_names(data, detections: list, n_joints: int) -> list[str] | None:
    """The joint names of a COCO-style dict (`categories[].keypoints` of the detections' category), or None."""
    if not isinstance(data, Mapping) or not isinstance(data.get("categories"), list):
        return None
    named = [
        c
        for c in data["categories"]
        if isinstance(c, Mapping) and isinstance(c.get("keypoints"), list) and c["keypoints"]
    ]
    if not named:
        return None
    used = {det.get("category_id") for det in detections if isinstance(det, Mapping)}
    chosen = [c for c in named if c.get("id") in used] or named
    orders = {tuple(map(str, c["keypoints"])) for c in chosen}
    if len(orders) > 1:
        raise ClipError("the annotations' categories name their keypoints in different orders")
    names = list(next(iter(orders)))
    if detections and len(names) != n_joints:
        raise ClipError(
            f"categories[].keypoints names {len(names)} joints but the annotations have {n_joints} per person"
        )
    return names


def order_if_named(names: Sequence[str], layout: Layout, where: str) -> list[int] | None:
    """Like `order_for_layout` for files whose joint names are free text (DeepLabCut body parts): names of which
    none is a joint of the layout (an animal skeleton) keep the file's order."""
    known = {canonical_joint_name(name) for joint in layout.joints for name in layout.names_of(joint)}
    if not any(canonical_joint_name(n) in known for n in names):
        return None
    return order_for_layout(names, layout, where)
