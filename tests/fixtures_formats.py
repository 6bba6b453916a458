"""Writers of realistic files in the formats added for issue 12 (NTU skeletons, ST-GCN arrays, Kinetics-skeleton,
MMPose, YOLO-pose, MediaPipe, DeepLabCut) and 26 (SLEAP analysis CSV), into tmp_path; nothing is copied from ../shared."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def ntu_bodies(n_bodies: int, n_frames: int, *, seed: int = 0) -> np.ndarray:
    """(B, T, 25, 12) NTU joint values: x y z depthX depthY colorX colorY orientWXYZ trackingState."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n_bodies, n_frames, 25, 12))
    for b in range(n_bodies):
        base = np.stack([rng.uniform(-0.3, 0.3, 25), np.linspace(0.8, -0.8, 25), np.full(25, 3.0 + b)], -1)
        t = np.arange(n_frames)[:, None, None]
        xyz = base[None] + np.concatenate([np.sin(t / 6.0) * 0.05, np.zeros_like(t) + 0 * t, t * 0.002], -1)
        out[b, :, :, 0:3] = xyz
        out[b, :, :, 3] = 254.878 + 365.456 * xyz[..., 0] / xyz[..., 2]  # depthX
        out[b, :, :, 4] = 205.395 - 365.456 * xyz[..., 1] / xyz[..., 2]  # depthY
        out[b, :, :, 5] = 960 + 1060 * xyz[..., 0] / xyz[..., 2]  # colorX
        out[b, :, :, 6] = 540 - 1060 * xyz[..., 1] / xyz[..., 2]  # colorY
        out[b, :, :, 7:11] = rng.normal(0, 0.5, (n_frames, 25, 4))
        out[b, :, :, 11] = 2
    return out


def write_ntu_skeleton(
    path: Path, bodies: np.ndarray, body_ids: list[str], present: np.ndarray | None = None
) -> Path:
    """An NTU .skeleton text file; bodies (B, T, 25, 12); present (B, T) bool says which body is in which frame."""
    n_bodies, n_frames = bodies.shape[:2]
    present = np.ones((n_bodies, n_frames), bool) if present is None else present
    lines = [str(n_frames)]
    for t in range(n_frames):
        in_frame = [b for b in range(n_bodies) if present[b, t]]
        lines.append(str(len(in_frame)))
        for b in in_frame:
            lines.append(f"{body_ids[b]} 0 1 1 1 1 0 -0.0311 0.1224 2")
            lines.append("25")
            for j in range(25):
                v = bodies[b, t, j]
                lines.append(" ".join(f"{x:.7g}" for x in v[:11]) + f" {int(v[11])}")
    path.write_text("\r\n".join(lines) + "\r\n")  # the release has Windows line ends
    return path


def stgcn_kinetics_arrays(n_clips: int, lengths: list[int], *, t_max: int = 300, seed: int = 0) -> np.ndarray:
    """(N, 3, T, 18, 2) like ST-GCN's Kinetics gendata: x, y - 0.5 (normalised, centred), score; zero padded,
    and 0 where the score is 0. Clip i has lengths[i] frames and one person; person 1 is empty padding."""
    rng = np.random.default_rng(seed)
    data = np.zeros((n_clips, 3, t_max, 18, 2), np.float32)
    for i, n in enumerate(lengths):
        xy = rng.uniform(0.2, 0.8, (2, 1, 18)) + np.linspace(0, 0.05, n)[None, :, None]
        data[i, :2, :n, :, 0] = xy - 0.5
        data[i, 2, :n, :, 0] = rng.uniform(0.2, 1.0, (n, 18))
        data[i, :, :n, 3, 0] = 0  # an undetected joint
    return data


def write_sleap_csv(
    path: Path, keypoints: np.ndarray, scores: np.ndarray, nodes: list[str], *, user_rows: tuple = ()
) -> Path:
    """SLEAP's analysis CSV: one row per (track, frame) with a point, columns track, frame_idx, instance.score,
    <node>.x, <node>.y, <node>.score; keypoints (M, T, V, 2), scores (M, T, V); NaN points are empty cells.
    Rows (m, t) in `user_rows` are user-labelled instances: no scores."""
    header = ["track", "frame_idx", "instance.score"] + [
        f"{n}.{c}" for n in nodes for c in ("x", "y", "score")
    ]
    lines = [",".join(header)]
    for t in range(keypoints.shape[1]):
        for m in range(keypoints.shape[0]):
            if not np.isfinite(keypoints[m, t]).any():
                continue
            user = (m, t) in user_rows
            cells = [f"track_{m}", str(t), "" if user else f"{np.nanmean(scores[m, t]):.4f}"]
            for v in range(len(nodes)):
                x, y = keypoints[m, t, v]
                point = np.isfinite(x) and np.isfinite(y)
                cells += [f"{x:.3f}" if point else "", f"{y:.3f}" if point else ""]
                cells.append("" if user or not point else f"{scores[m, t, v]:.4f}")
            lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_dlc(
    path: Path, keypoints: np.ndarray, scores: np.ndarray, parts: list[str], individuals: list[str] | None
) -> Path:
    """DeepLabCut's table (rows = frames, column MultiIndex scorer/[individuals]/bodyparts/coords) as the .h5 or
    .csv its suffix names; keypoints (M, T, V, 2), scores (M, T, V); individuals None: single-animal."""
    import pandas as pd

    scorer = "DLC_dlcrnetms5_miceJan1shuffle1_50000"
    columns, data = [], []
    for m in range(keypoints.shape[0]):
        for v, part in enumerate(parts):
            for c, coord in enumerate(("x", "y", "likelihood")):
                columns.append(
                    (scorer, individuals[m], part, coord) if individuals else (scorer, part, coord)
                )
                data.append(keypoints[m, :, v, c] if c < 2 else scores[m, :, v])
    names = (
        ["scorer", "individuals", "bodyparts", "coords"] if individuals else ["scorer", "bodyparts", "coords"]
    )
    table = pd.DataFrame(np.stack(data, 1), columns=pd.MultiIndex.from_tuples(columns, names=names))
    if path.suffix == ".csv":
        table.to_csv(path)
    else:
        table.to_hdf(path, key="df_with_missing", format="table", mode="w")
    return path


def add_sleap_edges(path: Path, node_names: list[str], edges: list[tuple[str, str]]) -> Path:
    """Add the skeleton SLEAP's analysis HDF5 carries: `edge_names` (E, 2) and `edge_inds` (E, 2) node numbers."""
    import h5py

    with h5py.File(path, "a") as f:
        f.create_dataset("edge_names", data=[[a.encode(), b.encode()] for a, b in edges])
        f.create_dataset("edge_inds", data=[[node_names.index(a), node_names.index(b)] for a, b in edges])
    return path
