"""`actrec-etl verify`: check every file of a keypoint or heatmap store; each problem is one line naming the file
or the clip.

Metadata (zarr.json files, the small per-clip arrays, clips.parquet, rejects.parquet, the attrs) is checked
against the sha256 seal written when the store was finished (etl.stores.storeio.seal). Bulk data is decoded through
zarr (not the training read path, so the check is independent of it): every heatmap chunk's crc32c is verified
by the codec, a missing shard or chunk file is reported (never read as zeros), and each clip's decoded values
are compared with the checksum stored when it was written (heatmaps: crc32c at render; keypoints: crc32c of
coords and scores at ingest, and of coords3d and scores where the store has 3D joints).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zarr

from etl.common.errors import ActrecError
from etl.stores import heatmap_store as hs
from etl.stores import keypoint_store as ks
from etl.stores.cliptable import CLIPS_FILE, check_table_matches, read_clip_table, read_rejects
from etl.stores.storeio import seal_problems


@dataclass
class VerifyReport:
    kind: str = ""
    n_clips: int = 0
    n_frames: int = 0
    bad: list[tuple[str, str]] = field(
        default_factory=list
    )  # (clip id or store-relative file, what is wrong)

    @property
    def ok(self) -> bool:
        return not self.bad


def verify_store(
    path: str | Path, *, batch_frames: int = 4096, on_progress: Callable[[int, int], None] | None = None
) -> VerifyReport:
    path = Path(path)
    report = VerifyReport()
    try:
        attrs = json.loads((path / "zarr.json").read_text()).get("attributes", {})
    except (OSError, ValueError, AttributeError) as exc:
        report.bad.append(("zarr.json", f"unreadable: {type(exc).__name__}: {exc}"))
        return report
    report.kind = attrs.get("kind", "")
    versions = {hs.KIND: hs.FORMAT_VERSION, ks.KIND: ks.FORMAT_VERSION}
    if report.kind not in versions:
        report.bad.append(("zarr.json", f"not an actrec store (kind {report.kind!r})"))
        return report
    if attrs.get("format_version") != versions[report.kind]:
        remake = hs.REMAKE if report.kind == hs.KIND else ks.REMAKE
        report.bad.append(
            ("zarr.json", f"format_version {attrs.get('format_version')} is not read here: {remake}")
        )
        return report
    if attrs.get("complete") is not True:
        report.bad.append(
            ("zarr.json", f"complete={attrs.get('complete')}: an unfinished run's folder, not a store")
        )
    report.bad += seal_problems(path, attrs)
    try:
        table = read_clip_table(path)
        read_rejects(path)
        check_table_matches(table, attrs, path, "")
    except ActrecError as exc:
        report.bad.append((CLIPS_FILE, str(exc)))
    if report.bad:
        return report  # the map from clips to data is not trustworthy: decoding would blame the wrong clips
    report.n_clips = len(table)
    if report.kind == hs.KIND:
        _verify_heatmaps(path, report, batch_frames, on_progress)
    else:
        _verify_keypoints(path, report, on_progress)
    return report


def _verify_heatmaps(path: Path, report: VerifyReport, batch_frames: int, on_progress) -> None:
    try:
        store = hs.HeatmapStore.open(path)
    except ActrecError as exc:
        report.bad.append(("heatmaps", str(exc)))
        return
    sums = store.group["checksums"][:]
    ids = store.table["clip_id"].tolist()
    n, total = len(store), store.heatmaps.shape[0]
    # Block k of clips [i, j) covers frames [clip_start[i], clip_start[j]): the clips and the padding after
    # them, so together the blocks decode every chunk of the array.
    ends = np.append(store.clip_start[1:], total)  # (N,) first frame after clip i's padding
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
            if hs.clip_checksum(frames) != int(sums[k]):
                report.bad.append((ids[k], "checksum mismatch: decoded values differ from what was rendered"))
        i = j
        if on_progress:
            on_progress(i, n)


def _verify_keypoints(path: Path, report: VerifyReport, on_progress, batch_clips: int = 256) -> None:
    group = zarr.open_group(str(path), mode="r")
    for name in ks.data_arrays(path):
        arr = group[name]
        n_chunks = -(-arr.shape[0] // arr.chunks[0])
        tail = "/0" * (arr.ndim - 1)
        for c in range(n_chunks):
            if not (path / f"{name}/c/{c}{tail}").is_file():
                report.bad.append((f"{name}/c/{c}{tail}", "chunk file is missing"))
    if report.bad:
        return
    try:
        store = ks.KeypointStore.open(path)
    except ActrecError as exc:
        report.bad.append(("row_offsets", str(exc)))
        return
    n = len(store)
    ids = store.table["clip_id"].tolist()
    for i in range(0, n, batch_clips):
        j = min(i + batch_clips, n)
        arrays = ["coords"] + ([ks.COORDS3D] if store.checksums3d is not None else [])
        ok = np.ones(j - i, bool)  # clips of this block without a problem so far
        for name in arrays:
            try:
                store.read_rows(i, j, name)
                continue
            except Exception:
                pass
            for k in range(i, j):  # damage somewhere in the block: find the clip(s) it belongs to
                if not ok[k - i]:
                    continue
                try:
                    store.read_rows(k, k + 1, name)
                except Exception as exc:
                    why = str(exc) if isinstance(exc, ActrecError) else f"cannot decode {name}: {exc}"
                    report.bad.append((ids[k], why))
                    ok[k - i] = False
        report.n_frames += int(store.table["n_frames"].iloc[i:j][ok].sum())
        if on_progress:
            on_progress(j, n)
