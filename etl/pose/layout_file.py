"""`--layout`: a built-in layout's name, `from-file` (the joints a pose file names, with its skeleton's edges), or
a layout YAML (docs/formats.md, "Layouts of your own").

From a file: SLEAP analysis `.h5` (`node_names`, `edge_inds`), SLEAP analysis CSV (node names; no edges),
DeepLabCut `.h5`/`.csv` (body parts; edges from the `skeleton` of the project's `config.yaml` when it lies beside
the file or one folder up), COCO JSON (`categories[].keypoints`, `skeleton` counted from 1) and MMPose JSON
(`meta_info.keypoint_id2name`, `skeleton_links`). The first file of the input (in reading order) names the joints;
every other file must name the same ones (the readers refuse others with both orders). Left/right pairs come from
the names (`left_`/`right_`, `l_`/`r_`, `...L`/`...R`); a file whose joints are exactly a built-in layout's gets
that layout.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from etl.common.errors import ActrecError
from etl.pose.layout_def import layout_from_definition
from etl.pose.skeleton import LAYOUTS, Layout, get_layout

FROM_FILE = "from-file"
YAML_SUFFIXES = (".yaml", ".yml")
# (left form, right form) of a joint name: the right name is the left one with the first match replaced
_SIDE_RULES = (
    (re.compile(r"^left(?=[_\-\s.]?\w)"), "right"),
    (re.compile(r"^Left(?=[_\-\s.]?\w)"), "Right"),
    (re.compile(r"^LEFT(?=[_\-\s.]?\w)"), "RIGHT"),
    (re.compile(r"^l(?=[_\-.]\w)"), "r"),
    (re.compile(r"^L(?=[_\-.]\w)"), "R"),
    (re.compile(r"(?<=\w)([_\-.])left$"), r"\1right"),
    (re.compile(r"(?<=\w)([_\-.])l$"), r"\1r"),
    (re.compile(r"(?<=[a-z])L(?=\d*$)"), "R"),  # SLEAP's fly: wingL, forelegL4
    (re.compile(r"(?<=\w)([_\-.])L$"), r"\1R"),
)


def layout_option(value: str, paths: Sequence[Path] = (), fmt: str = "auto") -> Layout:
    """The Layout `--layout VALUE` means for input `paths` read as `fmt`."""
    if value == FROM_FILE:
        return layout_from_file(list(paths), fmt)
    if value.lower().endswith(YAML_SUFFIXES):
        return load_layout_yaml(Path(value))
    return get_layout(value)


def infer_pairs(joints: Sequence[str]) -> list[tuple[int, int]]:
    """(left, right) joint index pairs found by the usual naming; each joint in one pair at most."""
    index = {name: i for i, name in enumerate(joints)}
    pairs, used = [], set()
    for i, name in enumerate(joints):
        for pattern, right in _SIDE_RULES:
            mirror = pattern.sub(right, name, count=1)
            j = index.get(mirror)
            if mirror != name and j is not None and i not in used and j not in used:
                pairs.append((i, j))
                used.update((i, j))
                break
    return pairs


def load_layout_yaml(path: Path) -> Layout:
    """A layout YAML: name (default: the file name), joints, limbs (or edges), left_right (optional, else
    inferred from the names), center (optional; `centre` is read too), description (optional)."""
    where = f"layout file {path}"
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ActrecError(f"cannot read {where}: {exc.strerror or exc}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ActrecError(f"{where} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, Mapping):
        raise ActrecError(f"{where} must be a mapping with 'joints' and 'limbs', found {type(data).__name__}")
    unknown = sorted(set(map(str, data)) - {"name", "joints", "limbs", "edges", "left_right", "centre",
                                              "center", "description"})  # fmt: skip
    if unknown:
        raise ActrecError(
            f"{where}: unknown key(s) {', '.join(unknown)}; a layout file has name, joints, limbs (or edges), "
            "left_right, center, description"
        )
    if "joints" not in data:
        raise ActrecError(f"{where} has no 'joints': list the joint names in the order of the pose files")
    if "limbs" in data and "edges" in data:
        raise ActrecError(f"{where}: give 'limbs' or 'edges', not both")
    joints = data["joints"]
    pairs = data.get("left_right")
    if pairs is None and isinstance(joints, list) and all(isinstance(j, str) for j in joints):
        pairs = [[joints[a], joints[b]] for a, b in infer_pairs(joints)]
    definition = {
        "name": data.get("name", Path(path).name.split(".")[0]),
        "joints": joints,
        "limbs": data.get("limbs", data.get("edges")),
        "left_right_joints": pairs,
        "center": data.get("center", data.get("centre")),  # either spelling
        "description": data.get("description") or f"from {Path(path).name}",
    }
    return layout_from_definition(definition, where)


def layout_from_file(paths: list[Path], fmt: str) -> Layout:
    """The layout the first pose file of `paths` names (see the module docstring)."""
    from etl.readers import coco_json, detect_source, dlc, h5, mmpose_json, sleap_csv
    from etl.readers.common import expand_files

    if fmt == "auto":
        fmt = detect_source(paths).fmt
    reader = _NAMERS.get(fmt)
    if reader is None:
        raise ActrecError(
            f"--layout from-file: format {fmt} does not name its joints; the formats that do: "
            f"{', '.join(_NAMERS)}. Give a built-in layout or a layout YAML (docs/formats.md)"
        )
    modules = {
        "dlc": dlc,
        "h5": h5,
        "sleap-csv": sleap_csv,
        "coco-json": coco_json,
        "mmpose-json": mmpose_json,
    }
    files = expand_files(paths, modules[fmt].PATTERNS)
    if not files:
        raise ActrecError(f"--layout from-file: no {fmt} file in {', '.join(map(str, paths))}")
    names, edges = reader(files[0])
    for builtin in LAYOUTS.values():  # the file's joints are a built-in layout's: take it, limbs and all
        if list(builtin.joints) == list(names):
            return builtin
    family = {"h5": "sleap", "sleap-csv": "sleap", "coco-json": "coco", "mmpose-json": "mmpose"}.get(fmt, fmt)
    definition = {
        "name": f"{family}-{len(names)}",
        "joints": list(names),
        "limbs": [list(edge) for edge in edges],
        "left_right_joints": [[names[a], names[b]] for a, b in infer_pairs(names)],
        "description": f"from {files[0].name}",
    }
    return layout_from_definition(definition, f"--layout from-file ({files[0]})")


# --- the joint names and edges of each format that names its joints: path -> (names, [(name, name)]) ----------


def _sleap_h5(path: Path) -> tuple[list[str], list[tuple[str, str]]]:
    import h5py
    import numpy as np

    from etl.readers.common import as_text

    try:
        with h5py.File(path, "r") as f:
            if "node_names" not in f:
                raise ActrecError(f"--layout from-file: {path} has no node_names (not a SLEAP analysis file)")
            names = [as_text(n) for n in f["node_names"][()]]
            edges: list[tuple[str, str]] = []
            if "edge_inds" in f:
                inds = np.asarray(f["edge_inds"][()]).astype(np.int64).reshape(-1, 2)
                if inds.size and (inds.min() < 0 or inds.max() >= len(names)):
                    raise ActrecError(f"--layout from-file: {path}: edge_inds name nodes that do not exist")
                edges = [(names[a], names[b]) for a, b in inds.tolist()]
            elif "edge_names" in f:
                edges = [(as_text(a), as_text(b)) for a, b in f["edge_names"][()]]
    except OSError as exc:
        raise ActrecError(f"--layout from-file: cannot read {path}: {exc}") from None
    return names, edges


def _sleap_csv(path: Path) -> tuple[list[str], list[tuple[str, str]]]:
    from etl.readers import sleap_csv
    from etl.readers.common import ClipError

    try:
        header = sleap_csv._load(path)[0]  # the node names as written (the sniffers see them lower-case)
    except ClipError as exc:
        raise ActrecError(f"--layout from-file: {path}: {exc}") from None
    return [c[:-2] for c in header if c.endswith(".x") and f"{c[:-2]}.y" in header], []


def _dlc(path: Path) -> tuple[list[str], list[tuple[str, str]]]:
    from etl.readers import dlc
    from etl.readers.common import ClipError

    try:
        columns = (dlc._load_csv(path) if path.suffix.lower() == ".csv" else dlc._load_h5(path))[0]
    except ClipError as exc:
        raise ActrecError(f"--layout from-file: {path}: {exc}") from None
    names: list[str] = []
    for col in columns:
        if len(col) == 4 and col[1] == "single":
            continue  # unique body parts (objects), not joints
        part = col[-2]
        if part not in names:
            names.append(part)
    return names, _dlc_config_edges(path, names)


def _dlc_config_edges(path: Path, names: list[str]) -> list[tuple[str, str]]:
    """The `skeleton` of the DeepLabCut project's config.yaml beside the file (or one folder up: the project's
    videos/ folder holds the predictions); no config, no edges."""
    for folder in (path.parent, path.parent.parent):
        config = folder / "config.yaml"
        if not config.is_file():
            continue
        try:
            data = yaml.safe_load(config.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ActrecError(
                f"--layout from-file: cannot read the DeepLabCut config {config}: {exc}"
            ) from None
        skeleton = data.get("skeleton") if isinstance(data, Mapping) else None
        if not skeleton:
            return []
        edges = [
            tuple(map(str, edge)) for edge in skeleton if isinstance(edge, list | tuple) and len(edge) == 2
        ]
        unknown = sorted({n for edge in edges for n in edge} - set(names))
        if unknown or len(edges) != len(skeleton):
            raise ActrecError(
                f"--layout from-file: the skeleton of {config} names {', '.join(unknown) or 'a malformed edge'}, "
                f"which is no body part of {path.name}"
            )
        return edges  # type: ignore[return-value]
    return []


def _coco(path: Path) -> tuple[list[str], list[tuple[str, str]]]:
    from etl.readers.common import load_json

    data = _json(path, load_json)
    categories = data.get("categories") if isinstance(data, Mapping) else None
    named = [c for c in categories or [] if isinstance(c, Mapping) and isinstance(c.get("keypoints"), list)]
    if not named or not named[0]["keypoints"]:
        raise ActrecError(f"--layout from-file: {path} has no categories[].keypoints naming the joints")
    names = [str(n) for n in named[0]["keypoints"]]
    links = named[0].get("skeleton") or []
    return names, _edges(links, names, 1, f"{path}: categories[].skeleton")  # COCO counts joints from 1


def _mmpose(path: Path) -> tuple[list[str], list[tuple[str, str]]]:
    from etl.readers.common import load_json

    data = _json(path, load_json)
    meta = data.get("meta_info") if isinstance(data, Mapping) else None
    id2name = meta.get("keypoint_id2name") if isinstance(meta, Mapping) else None
    if not isinstance(id2name, Mapping) or not id2name:
        raise ActrecError(f"--layout from-file: {path} has no meta_info.keypoint_id2name naming the joints")
    try:
        names = [str(id2name[k]) for k in sorted(id2name, key=int)]
    except (TypeError, ValueError):
        raise ActrecError(f"--layout from-file: {path}: keypoint_id2name must map joint numbers") from None
    return names, _edges(meta.get("skeleton_links") or [], names, 0, f"{path}: meta_info.skeleton_links")


def _json(path: Path, load_json):
    from etl.readers.common import ClipError

    try:
        return load_json(path)
    except ClipError as exc:
        raise ActrecError(f"--layout from-file: {path}: {exc}") from None


def _edges(links, names: list[str], base: int, where: str) -> list[tuple[str, str]]:
    """[[a, b], ...] joint numbers counted from `base` -> name pairs."""
    edges = []
    for link in links:
        if (
            not isinstance(link, list | tuple)
            or len(link) != 2
            or not all(isinstance(i, int) and base <= i < len(names) + base for i in link)
        ):
            raise ActrecError(f"--layout from-file: {where}: {link!r} is not a pair of joint numbers")
        edges.append((names[link[0] - base], names[link[1] - base]))
    return edges


_NAMERS = {
    "dlc": _dlc,
    "h5": _sleap_h5,
    "sleap-csv": _sleap_csv,
    "coco-json": _coco,
    "mmpose-json": _mmpose,
}
NAMING_FORMATS = tuple(_NAMERS)  # the formats whose files name their joints
