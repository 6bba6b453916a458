"""Training plots as PNG (DVC's HTML plots need a CDN; these work offline): curves, confusion, attention."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: pd.DataFrame, path: Path, title: str) -> None:
    """Loss and mean accuracy per epoch for train and validation, like the original project's curves."""
    plt = _pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    ep = history["epoch"]
    ax_loss.plot(ep, history["train_loss"], "o-", ms=3, label="train")
    ax_loss.plot(ep, history["val_loss"], "o-", ms=3, label="validation")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.plot(ep, history["train_top1"], "o-", ms=3, label="train top-1")
    ax_acc.plot(ep, history["val_top1"], "o-", ms=3, label="validation top-1")
    ax_acc.plot(ep, history["val_mean_class_acc"], "s--", ms=3, label="validation mean class acc.")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1.02))
    from matplotlib.ticker import MaxNLocator

    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_confusion(cm: np.ndarray, classes: list[str], path: Path, title: str) -> None:
    plt = _pyplot()
    cm = np.asarray(cm, np.float64)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    k = len(classes)
    fig, ax = plt.subplots(figsize=(max(4.5, 0.45 * k + 2), max(4, 0.45 * k + 1.5)))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(k), classes, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    if k <= 30:
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    ax.text(
                        j,
                        i,
                        int(cm[i, j]),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black",
                    )
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_attention(weights: np.ndarray, names: list[str], path: Path) -> None:
    """Temporal attention of cnn_lstm_attn: (N, T) weights over the sampled frames of N validation clips."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for w, name in zip(weights, names, strict=True):
        ax.plot(np.arange(len(w)), w, "o-", ms=3, label=name)
    ax.axhline(1 / weights.shape[1], color="grey", ls=":", label="uniform")
    ax.set(
        xlabel="sampled frame", ylabel="attention weight", title="attention over frames (validation clips)"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
