"""Classification metrics from predicted probabilities (numpy; shared by validation and `evaluate`)."""

from __future__ import annotations

import numpy as np


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, n_classes: int) -> np.ndarray:
    """(K, K) int64: row = true class, column = predicted class."""
    cm = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(cm, (labels, preds), 1)
    return cm


def classification_metrics(probs: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict:
    """top1, top5, mean class accuracy (fractions in [0, 1]) and per-class accuracy for (N, K) probabilities.

    Mean class accuracy averages over the classes present in `labels` (a class with no clip has no accuracy)."""
    labels = np.asarray(labels, np.int64)
    k = probs.shape[1]
    order = np.argsort(-probs, axis=1, kind="stable")
    top1 = order[:, 0]
    top5 = (order[:, : min(5, k)] == labels[:, None]).any(axis=1)
    cm = confusion_matrix(labels, top1, k)
    support = cm.sum(axis=1)
    present = support > 0
    per_class = {classes[c]: float(cm[c, c] / support[c]) for c in range(k) if present[c]}
    return {
        "top1": float((top1 == labels).mean()),
        "top5": float(top5.mean()),
        "mean_class_acc": float(np.mean(list(per_class.values()))) if per_class else 0.0,
        "n_clips": len(labels),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
    }


def clip_scores(clip_ids, labels: np.ndarray, scores: np.ndarray, classes) -> dict:
    """{clip id: {"label": class name, "scores": K floats}} for (N,) label indices and (N, K) scores: what
    evaluate keeps and fuse reads and writes."""
    return {
        str(clip_id): {"label": classes[int(label)], "scores": [float(p) for p in row]}
        for clip_id, label, row in zip(clip_ids, labels, scores, strict=True)
    }
