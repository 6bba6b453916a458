"""`actrec-train predict --window W --stride S`: labels over time for a long pose sequence.

Windows of W frames start every S frames (the last one is moved back to end at the last frame, so every frame
is covered). Each window is a clip of its own, scored as predict scores a whole clip (train/deploy/predict.py
ClipScorer): a heatmap model's window is rendered on its own, as a training clip is (its own PoseCompact box),
sampled to the checkpoint's clip length with PoseC3D's test views and scored (+ mirror); a graph model's is
pre-normalised, turned into its stream and sampled as evaluate reads a clip (no mirror). The views' softmax is
averaged: one probability vector per window. Output: CSV or JSON rows (clip, start/end frame, top-k labels with
probabilities, every class's probability) and a timeline PNG.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from etl.common.errors import ActrecError
from train.checkpoint import load_model
from train.deploy.predict import ClipScorer, read_clips
from train.device import pick_device

MAX_WINDOWS = 100_000  # one clip; bounds the work a tiny stride on a huge file can ask for


def window_starts(n_frames: int, window: int, stride: int) -> list[int]:
    """Start frames of the windows over n_frames; a clip shorter than one window is one window."""
    if window < 1 or stride < 1:
        raise ActrecError("--window and --stride must be >= 1")
    if n_frames <= window:
        return [0]
    starts = list(range(0, n_frames - window + 1, stride))
    if starts[-1] + window < n_frames:
        starts.append(n_frames - window)  # cover the tail
    return starts


@dataclass
class ClipWindows:
    clip_id: str
    n_frames: int
    starts: np.ndarray  # (N,) first frame of each window
    ends: np.ndarray  # (N,) one past its last frame
    probs: np.ndarray  # (N, K) averaged softmax per window
    classes: list[str]

    def top(self, i: int, k: int) -> list[tuple[str, float]]:
        order = np.argsort(-self.probs[i])[: min(k, len(self.classes))]
        return [(self.classes[j], float(self.probs[i, j])) for j in order]

    @property
    def labels(self) -> list[str]:
        return [self.classes[j] for j in self.probs.argmax(axis=1)]


def predict_windows(
    checkpoint: str | Path,
    pose_file: Path,
    *,
    window: int,
    stride: int,
    fmt: str = "auto",
    clips: int = 1,
    flip: bool = True,
    device: str = "auto",
) -> list[ClipWindows]:
    dev = pick_device(device)
    loaded = load_model(checkpoint, dev)
    scorer = ClipScorer(loaded, dev)  # heatmaps or a graph model's coordinates, as predict reads a whole clip
    results = []
    for clip in read_clips(pose_file, fmt, scorer.layout):
        n = clip.n_frames
        starts = window_starts(n, window, stride)
        if len(starts) > MAX_WINDOWS:
            raise ActrecError(
                f"{clip.clip_id}: {len(starts)} windows (more than {MAX_WINDOWS}); use a larger --stride"
            )
        ends = [min(s + window, n) for s in starts]
        img_hw = (clip.img_h, clip.img_w)
        rows = [
            scorer.score(clip.keypoints[:, s:e], clip.scores[:, s:e], img_hw, clips, flip=flip)[0]  # (K,)
            for s, e in zip(starts, ends, strict=True)
        ]
        results.append(
            ClipWindows(clip.clip_id, n, np.asarray(starts), np.asarray(ends), np.stack(rows), loaded.classes)
        )
    return results


def write_windows(results: list[ClipWindows], out: Path, top_k: int, meta: dict) -> None:
    """CSV (one row per window; top-k then every class's probability) or JSON, chosen by the suffix."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".json":
        doc = {
            **meta,
            "clips": [
                {
                    "clip_id": r.clip_id,
                    "n_frames": r.n_frames,
                    "classes": r.classes,
                    "windows": [
                        {
                            "start_frame": int(r.starts[i]),
                            "end_frame": int(r.ends[i]),
                            "top": [{"label": name, "probability": p} for name, p in r.top(i, top_k)],
                            "probabilities": [float(p) for p in r.probs[i]],
                        }
                        for i in range(len(r.starts))
                    ],
                }
                for r in results
            ],
        }
        out.write_text(json.dumps(doc, indent=2) + "\n")
        return
    if out.suffix.lower() != ".csv":
        raise ActrecError(f"--out {out}: use a .csv or .json file")
    classes = results[0].classes
    k = min(top_k, len(classes))
    header = ["clip_id", "start_frame", "end_frame"]
    header += [f"{col}_{j}" for j in range(1, k + 1) for col in ("label", "prob")]
    header += [f"p_{name}" for name in classes]
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for r in results:
            for i in range(len(r.starts)):
                top = [v for name, p in r.top(i, k) for v in (name, f"{p:.6f}")]
                writer.writerow(
                    [r.clip_id, int(r.starts[i]), int(r.ends[i]), *top, *(f"{p:.6f}" for p in r.probs[i])]
                )


def plot_timeline(result: ClipWindows, path: Path, max_classes: int = 8) -> None:
    """Probability of the most likely classes over time (window centres) above a bar of each window's label."""
    from train.plots import _pyplot

    plt = _pyplot()
    centres = (result.starts + result.ends) / 2
    shown = np.argsort(-result.probs.max(axis=0))[:max_classes]  # classes that win somewhere first
    colours = {j: plt.cm.tab10(i % 10) for i, j in enumerate(shown)}
    fig, (ax, bar) = plt.subplots(2, 1, figsize=(10, 4.2), sharex=True, gridspec_kw={"height_ratios": [4, 1]})
    for j in shown:
        ax.plot(centres, result.probs[:, j], "o-", ms=3, color=colours[j], label=result.classes[j])
    ax.set(ylabel="probability", ylim=(0, 1.02), title=f"{result.clip_id}: labels over time")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="upper right")
    best = result.probs.argmax(axis=1)
    # Each window's label over the frames nearest its centre (boundaries halfway between centres).
    edges = np.concatenate([[0], (centres[1:] + centres[:-1]) / 2, [result.n_frames]])
    for i, j in enumerate(best):
        bar.axvspan(edges[i], edges[i + 1], color=colours.get(j, "grey"))
        if len(best) <= 40:  # names stay readable
            bar.text(
                (edges[i] + edges[i + 1]) / 2, 0.5, result.classes[j], ha="center", va="center", fontsize=6
            )
    bar.set(yticks=[], xlabel="frame", xlim=(0, result.n_frames))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
