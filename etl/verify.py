"""`actrec-etl verify`: decode every clip of a heatmap store and check it against its stored checksum."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

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
    """Decoding runs the crc32c codec of every chunk (damaged bytes fail there); the per-clip crc32 of the
    decoded values catches anything that decodes but is not what was rendered."""
    store = HeatmapStore.open(path)
    sums = store.group["checksums"][:]
    ids = store.table["clip_id"].tolist()
    report = VerifyReport(n_clips=len(store))
    i = 0
    while i < len(store):
        # Read runs of consecutive clips in one request; if a run fails, fall back to clip by clip.
        j, frames = i, 0
        while j < len(store) and (j == i or frames + store.n_frames[j] <= batch_frames):
            frames += int(store.n_frames[j])
            j += 1
        try:
            lo = int(store.clip_start[i])
            hi = int(store.clip_start[j - 1] + store.n_frames[j - 1])
            block = store.heatmaps[lo:hi]
            clips = [
                (k, block[store.clip_start[k] - lo : store.clip_start[k] - lo + store.n_frames[k]])
                for k in range(i, j)
            ]
        except Exception:
            clips = [(k, None) for k in range(i, j)]
        for k, data in clips:
            if data is None:
                try:
                    data = store.read_clip(k)
                except Exception as exc:
                    report.bad.append((ids[k], f"cannot decode: {type(exc).__name__}: {exc}"))
                    continue
            report.n_frames += len(data)
            if clip_checksum(data) != int(sums[k]):
                report.bad.append((ids[k], "checksum mismatch: decoded values differ from what was rendered"))
        i = j
        if on_progress:
            on_progress(i, len(store))
    return report
