"""`actrec-etl verify`: decode every chunk of a heatmap store and check every clip against its stored checksum.

Decoding goes through zarr (not the fast reader), so the check is independent of the training read path; every
chunk's crc32c is verified by the codec, and each clip's decoded values are compared with the crc32c stored at
render time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from etl.heatmap_store import HeatmapStore, clip_checksum


@dataclass
class VerifyReport:
    n_clips: int
    n_frames: int = 0
    bad: list[tuple[str, str]] = field(default_factory=list)  # (clip_id, what is wrong)

    @property
    def ok(self) -> bool:
        return not self.bad


def verify_store(
    path: str | Path, *, batch_frames: int = 4096, on_progress: Callable[[int, int], None] | None = None
) -> VerifyReport:
    store = HeatmapStore.open(path)
    sums = store.group["checksums"][:]
    ids = store.table["clip_id"].tolist()
    n, total = len(store), store.heatmaps.shape[0]
    # Block k of clips [i, j) covers frames [clip_start[i], clip_start[j]): the clips and the padding after
    # them, so together the blocks decode every chunk of the array.
    ends = np.append(store.clip_start[1:], total)  # (N,) first frame after clip i's padding
    report = VerifyReport(n_clips=n)
    i = 0
    while i < n:
        j = i + 1
        while j < n and ends[j] - store.clip_start[i] <= batch_frames:
            j += 1
        lo, hi = int(store.clip_start[i]), int(ends[j - 1])
        try:
            block = store.heatmaps[lo:hi]  # (hi - lo, C, S, S)
        except Exception:
            block = None
        for k in range(i, j):
            start, t = int(store.clip_start[k]), int(store.n_frames[k])
            if block is not None:
                frames = block[start - lo : start - lo + t]  # (T, C, S, S)
            else:  # damage somewhere in the block: find the clip(s) it belongs to
                try:
                    frames = store.heatmaps[start : start + t]
                    store.heatmaps[start + t : int(ends[k])]  # its padding chunks
                except Exception as exc:
                    report.bad.append((ids[k], f"cannot decode: {type(exc).__name__}: {exc}"))
                    continue
            report.n_frames += len(frames)
            if clip_checksum(frames) != int(sums[k]):
                report.bad.append((ids[k], "checksum mismatch: decoded values differ from what was rendered"))
        i = j
        if on_progress:
            on_progress(i, n)
    return report
