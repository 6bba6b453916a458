"""The axis order of a SLEAP analysis file's `tracks` and `point_scores`, from what the file says about itself.

Three orders exist in the wild (h5py's view of the stored array):
  matlab   (track, xy, node, frame)  SLEAP's export and sleap-io's default (the MATLAB transpose)
  standard (frame, track, node, xy)  sleap-io `preset="standard"`
  legacy   (frame, node, xy, track)  SLEAP's export with `transpose=False`
sleap-io writes the order as `tracks.attrs["dims"]` (a JSON list) and the file attribute `preset`; SLEAP wrote
none and may write `transpose`. A file whose order cannot be told for sure is refused rather than guessed:
reading the matlab order of a standard file turns 2 tracks x 3000 frames into 2 frames x 3000 persons.
"""

from __future__ import annotations

import json

import h5py
import numpy as np

from etl.pose.skeleton import Layout
from etl.readers.common import ClipError, as_scalar, as_text
from etl.readers.joint_order import order_if_named

DIMS = ("frame", "track", "node", "xy")
_AMBIGUOUS = (
    "the axis order is ambiguous, re-export the file with sleap-io (which writes tracks.attrs['dims'])"
)
ORDERS: dict[str, tuple[str, ...]] = {
    "matlab": ("track", "xy", "node", "frame"),
    "standard": ("frame", "track", "node", "xy"),
    "legacy": ("frame", "node", "xy", "track"),
}


def stored_dims(f: h5py.File) -> tuple[tuple[str, ...], str]:
    """(dimension name per stored axis of `tracks`, how it was known); ClipError when the file is ambiguous."""
    tracks = f["tracks"]
    if "dims" in tracks.attrs:
        raw = tracks.attrs["dims"]
        try:
            dims = tuple(json.loads(as_text(raw))) if not _is_list(raw) else tuple(as_text(d) for d in raw)
        except (ValueError, TypeError):
            raise ClipError(
                f"SLEAP 'tracks' attribute dims must be a JSON list of names, found {raw!r}"
            ) from None
        if sorted(dims) != sorted(DIMS):
            raise ClipError(
                f"SLEAP 'tracks' attribute dims must name frame, track, node and xy once each, found {list(dims)}"
            )
        return dims, "tracks.attrs['dims']"
    preset = as_scalar(f.attrs["preset"]) if "preset" in f.attrs else None
    if preset is not None:
        if preset not in ("matlab", "standard"):
            raise ClipError(
                f"SLEAP file attribute preset={preset!r} without a 'dims' attribute on 'tracks': the axis order "
                "cannot be told (expected preset 'matlab' or 'standard', or tracks.attrs['dims'])"
            )
        return ORDERS[preset], f"preset={preset!r}"
    transpose = as_scalar(f.attrs["transpose"]) if "transpose" in f.attrs else None
    if transpose is not None and not bool(transpose):
        return ORDERS["legacy"], "transpose=False"
    return ORDERS["matlab"], "SLEAP's default (no dims, preset or transpose attribute)"


def sleap_arrays(f: h5py.File) -> tuple[np.ndarray, np.ndarray | None]:
    """keypoints (M tracks, T frames, V nodes, 2) float32 and point scores (M, T, V) float32 or None."""
    node = f["tracks"]
    if not isinstance(node, h5py.Dataset) or node.ndim != 4:
        raise ClipError(
            f"SLEAP 'tracks' must be a 4-d dataset, found {getattr(node, 'shape', type(node).__name__)}"
        )
    dims, known_by = stored_dims(f)
    size = dict(zip(dims, node.shape, strict=True))
    if size["xy"] != 2:
        raise ClipError(
            f"SLEAP 'tracks' has shape {node.shape}, which is not the order {tuple(dims)} given by {known_by} "
            f"(its xy axis has size {size['xy']}, not 2): {_AMBIGUOUS}"
        )
    _check_occupancy(f, size, dims, known_by)
    order = [dims.index(d) for d in ("track", "frame", "node", "xy")]
    keypoints = np.ascontiguousarray(np.asarray(node[()], dtype=np.float32).transpose(order))  # (M, T, V, 2)
    if "point_scores" not in f:
        return keypoints, None
    score_dims = tuple(d for d in dims if d != "xy")
    scores_node = f["point_scores"]
    expected = tuple(size[d] for d in score_dims)
    if not isinstance(scores_node, h5py.Dataset) or scores_node.shape != expected:
        raise ClipError(
            f"SLEAP 'point_scores' must be {score_dims} = {expected} to match 'tracks' {node.shape} read as "
            f"{tuple(dims)} (from {known_by}), found {getattr(scores_node, 'shape', type(scores_node).__name__)}: "
            f"{_AMBIGUOUS}"
        )
    score_order = [score_dims.index(d) for d in ("track", "frame", "node")]
    scores = np.ascontiguousarray(np.asarray(scores_node[()], dtype=np.float32).transpose(score_order))
    return keypoints, scores  # (M, T, V, 2), (M, T, V)


def _check_occupancy(f: h5py.File, size: dict, dims: tuple, known_by: str) -> None:
    """`track_occupancy` must agree with the order read for `tracks`: SLEAP and both sleap-io presets store it
    (frames, tracks) (its own dims attribute says otherwise); SLEAP's transpose=False, either way round."""
    occupancy = f.get("track_occupancy")
    if not isinstance(occupancy, h5py.Dataset) or occupancy.ndim != 2:
        return
    frames_tracks = (size["frame"], size["track"])
    allowed = [frames_tracks]
    if "dims" in occupancy.attrs:
        try:
            occ_dims = [as_text(d) for d in json.loads(as_text(occupancy.attrs["dims"]))]
            allowed = [tuple(size.get(d, -1) for d in occ_dims)]
        except (ValueError, TypeError):
            pass
    elif dims == ORDERS["legacy"]:
        allowed.append(frames_tracks[::-1])
    if occupancy.shape not in allowed:
        raise ClipError(
            f"SLEAP 'tracks' {tuple(f['tracks'].shape)} read as {tuple(dims)} (from {known_by}) means "
            f"{size['frame']} frames x {size['track']} tracks, but 'track_occupancy' is {occupancy.shape}: "
            f"{_AMBIGUOUS}"
        )


def _is_list(value) -> bool:
    return isinstance(value, list | tuple) or (isinstance(value, np.ndarray) and value.ndim == 1)


def sleap_node_order(f: h5py.File, n_nodes: int, layout: Layout) -> list[int] | None:
    """The layout's joint order of the nodes when `node_names` are joint names of the layout (see
    `order_if_named`); None for an animal skeleton or a file without node names."""
    node = f.get("node_names")
    if not isinstance(node, h5py.Dataset) or node.ndim != 1 or node.shape[0] != n_nodes:
        return None
    names = [as_text(n) for n in node[()]]
    return order_if_named(names, layout, "SLEAP node_names")
