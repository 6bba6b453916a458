"""What `actrec-etl info` shows about a store, computed from its attrs and clip table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import zarr

from etl.common.errors import ActrecError
from etl.stores.cliptable import read_clip_table, read_rejects
from etl.stores.keypoint_store import HAS_3D


@dataclass
class StoreSummary:
    header: list[str]
    splits: list[str]
    per_label: dict[str, dict[str, int]]
    per_split: dict[str, int]
    n_clips: int
    n_rejected: int
    reject_reasons: dict[str, int]


def store_summary(store: str | Path, max_reasons: int = 10) -> StoreSummary:
    try:
        attrs = dict(zarr.open_group(str(store), mode="r").attrs)
    except Exception as exc:
        raise ActrecError(f"{store} is not a zarr store: {exc}") from exc
    table = read_clip_table(store)
    rejects = read_rejects(store)
    split = table["split"].fillna("(none)").astype(str)
    splits = sorted(split.unique())
    per_label: dict[str, dict[str, int]] = {}
    for (label, s), n in table.assign(split=split).groupby(["label_name", "split"]).size().items():
        per_label.setdefault(str(label), {})[s] = int(n)
    header = [
        f"{store}: {attrs.get('kind', '?')} (format_version {attrs.get('format_version', '?')}), "
        f"layout {attrs.get('layout', '?')}",
        f"{len(table)} clips, {int(table['n_frames'].sum())} frames, {len(per_label)} labels, "
        f"up to {int(table['n_persons'].max()) if len(table) else 0} persons per clip",
    ]
    if attrs.get("kind") == "actrec.keypoints":
        n_3d = int(table[HAS_3D].sum()) if HAS_3D in table.columns else 0
        header.append(
            f"3D joints (coords3d): {n_3d} of {len(table)} clips" if n_3d else "no 3D joints (2D only)"
        )
    if "channels" in attrs:
        spec = attrs.get(
            "render", {}
        )  # a heatmap store's render spec (etl.heatmaps.spec.RenderSpec.to_attrs)
        header.append(
            f"{len(attrs['channels'])} channels ({spec.get('channels')}), "
            f"{spec.get('size')}x{spec.get('size')} px, sigma {spec.get('sigma')}, "
            f"{spec.get('dtype')}"
        )
    reasons = rejects["reason"].value_counts().head(max_reasons) if len(rejects) else {}
    return StoreSummary(
        header=header,
        splits=splits,
        per_label=dict(sorted(per_label.items())),
        per_split={s: int(n) for s, n in split.value_counts().items()},
        n_clips=len(table),
        n_rejected=len(rejects),
        reject_reasons={str(k): int(v) for k, v in dict(reasons).items()},
    )
