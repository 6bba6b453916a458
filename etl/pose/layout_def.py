"""Layouts that are not built in: a definition (joint names, limbs, left/right pairs, center joint) checked into a
`Layout`, and the one way a stored layout NAME becomes a Layout again.

Stores and checkpoints name a built-in layout only (so their bytes stay what they were); a layout taken from a
file or a layout YAML travels with its definition under "layout_def" (`Layout.definition`), and
`stored_layout` reads it back. Light on purpose: the stores and predict import it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from etl.common.errors import ActrecError
from etl.pose.skeleton import LAYOUTS, Layout, get_layout

LAYOUT_DEF = "layout_def"  # the attrs / checkpoint render key holding a custom layout's definition
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")


def stored_layout(attrs: Mapping, where: str = "") -> Layout:
    """The layout a store's attrs (or a checkpoint's render dict) record: a built-in one by its "layout" name,
    else the one its "layout_def" defines."""
    definition = attrs.get(LAYOUT_DEF)
    if definition is None:
        return get_layout(attrs["layout"])
    layout = layout_from_definition(definition, where or "the stored layout definition")
    if layout.name != attrs.get("layout"):
        raise ActrecError(
            f"{where}: layout {attrs.get('layout')!r} does not match its stored definition ({layout.name!r})"
        )
    return layout


def layout_from_definition(definition, where: str) -> Layout:
    """A checked Layout from a definition dict {name, joints, limbs, left_right_joints, center, description}
    whose limbs and pairs are given as joint names; ActrecError naming `where` and the fault otherwise."""
    if not isinstance(definition, Mapping):
        raise ActrecError(
            f"{where}: a layout definition must be a mapping, found {type(definition).__name__}"
        )
    name = definition.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ActrecError(
            f"{where}: 'name' must be a short name of letters, digits, '_', '.', '-', found {name!r}"
        )
    if name in LAYOUTS or name == "from-file":
        raise ActrecError(f"{where}: name {name!r} is taken by a built-in layout: choose another name")
    joints = _joints(definition.get("joints"), where)
    index = {joint: i for i, joint in enumerate(joints)}
    limbs = tuple(
        _pair(item, index, f"{where}: limb {k}") for k, item in enumerate(_list(definition, "limbs", where))
    )
    if len(set(map(frozenset, limbs))) != len(limbs):
        raise ActrecError(f"{where}: a limb is listed twice")
    if any(a == b for a, b in limbs):
        raise ActrecError(f"{where}: a limb joins a joint to itself")
    pairs = tuple(
        _pair(item, index, f"{where}: left/right pair {k}")
        for k, item in enumerate(_list(definition, "left_right_joints", where))
    )
    paired = [j for pair in pairs for j in pair]
    if len(set(paired)) != len(paired) or any(a == b for a, b in pairs):
        raise ActrecError(f"{where}: a joint is in more than one left/right pair (or paired with itself)")
    center = definition.get("center")
    if center is not None and center not in index:
        raise ActrecError(f"{where}: center joint {center!r} is not one of the joints")
    description = definition.get("description", "")
    return Layout(
        name=name,
        joints=joints,
        limbs=limbs,
        left_right_joints=pairs,
        left_right_limbs=mirrored_limb_pairs(joints, limbs, pairs, where),
        description=str(description) if description is not None else "",
        family="custom",
        center=center or "",
    )


def mirrored_limb_pairs(
    joints: Sequence[str],
    limbs: tuple[tuple[int, int], ...],
    pairs: tuple[tuple[int, int], ...],
    where: str,
) -> tuple[tuple[int, int], ...]:
    """(left limb, right limb) pairs: each limb's mirror is the limb between the mirrored joints. A limb whose
    mirror is not a limb would swap with nothing on a flip: ActrecError naming both."""
    flip = list(range(len(joints)))
    for a, b in pairs:
        flip[a], flip[b] = b, a
    at = {frozenset(limb): i for i, limb in enumerate(limbs)}
    left = {a for a, _ in pairs}
    out = []
    for i, (a, b) in enumerate(limbs):
        j = at.get(frozenset((flip[a], flip[b])))
        if j is None:
            raise ActrecError(
                f"{where}: limb {joints[a]}-{joints[b]} mirrors to {joints[flip[a]]}-{joints[flip[b]]}, which is "
                "not a limb: add it, or correct the left/right pairs"
            )
        if i < j:
            out.append((i, j) if a in left or b in left else (j, i))
    return tuple(out)


def _joints(value, where: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise ActrecError(f"{where}: 'joints' must be a non-empty list of joint names")
    if not all(isinstance(j, str) and j.strip() for j in value):
        raise ActrecError(f"{where}: every joint name must be non-empty text")
    joints = tuple(j.strip() for j in value)
    duplicates = sorted({j for j in joints if joints.count(j) > 1})
    if duplicates:
        raise ActrecError(f"{where}: joint name(s) listed twice: {', '.join(duplicates)}")
    return joints


def _list(definition: Mapping, key: str, where: str) -> list:
    value = definition.get(key)
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise ActrecError(
            f"{where}: '{key}' must be a list of [joint, joint] pairs, found {type(value).__name__}"
        )
    return list(value)


def _pair(item, index: dict[str, int], where: str) -> tuple[int, int]:
    if not isinstance(item, list | tuple) or len(item) != 2 or not all(isinstance(n, str) for n in item):
        raise ActrecError(f"{where} must be two joint names [a, b], found {item!r}")
    unknown = [n for n in item if n not in index]
    if unknown:
        raise ActrecError(f"{where} names {', '.join(map(repr, unknown))}, which is not one of the joints")
    return index[item[0]], index[item[1]]
