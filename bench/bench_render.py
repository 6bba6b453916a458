#!/usr/bin/env python
"""End-to-end render benchmark on Penn Action: keypoint store -> heatmap store, per codec and thread count.

    .venv/bin/python bench/bench_render.py            # prints a markdown table (bench/run_all.sh collects it)

Measured in one run: wall-clock clips/s and frames/s of `etl.commands.render.render` (27 channels, joints+limbs, 64 px,
uint8) with zstd, lz4 and no compression, 1 and 2 threads; stored bytes per clip against raw float32 (what the
anchor produces per frame) and raw uint8; and, per 48-frame training sample, the time to read + decode it from
the store against the time to render it from keypoints with our kernels (and the anchor's published per-sample
time for reference: the kernel table in docs/benchmarks.md has the same-run ratio).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))

import numpy as np  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from common import command_line, emit, ratio  # noqa: E402

from etl.commands.ingest import ingest  # noqa: E402
from etl.commands.render import render  # noqa: E402
from etl.heatmaps.clip import render_clip  # noqa: E402
from etl.heatmaps.spec import RenderSpec  # noqa: E402
from etl.pose.skeleton import get_layout  # noqa: E402
from etl.readers import ReadOptions  # noqa: E402
from etl.stores.heatmap_store import HeatmapStore  # noqa: E402
from etl.stores.keypoint_store import KeypointStore  # noqa: E402
from train.sources.sampling import sample_train  # noqa: E402


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def time_samples(kp: KeypointStore, hm: HeatmapStore, params: RenderSpec, n: int) -> tuple[float, float]:
    """Median ms per 48-frame sample: read+decode from the store, and render from keypoints (1 thread)."""
    from etl.heatmaps.kernels import set_threads

    set_threads(1)
    rng = np.random.RandomState(0)
    rows = rng.choice(len(hm), size=min(n, len(hm)), replace=False)
    hm.read_clip(int(rows[0]), np.arange(4))  # open the fast reader
    decode, draw = [], []
    for row in rows:
        frames = sample_train(int(hm.n_frames[row]), 48, rng)
        t0 = time.perf_counter()
        hm.read_clip(int(row), frames)
        decode.append(time.perf_counter() - t0)
        kps, scores = kp.read_clip(int(row))
        hw = (int(kp.table.img_h.iat[row]), int(kp.table.img_w.iat[row]))
        t0 = time.perf_counter()
        render_clip(kps[:, frames], scores[:, frames], hw, params, kp.layout)
        draw.append(time.perf_counter() - t0)
    return statistics.median(decode) * 1e3, statistics.median(draw) * 1e3


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels", default=str(SHARED / "data" / "penn_action" / "labels"))
    ap.add_argument("--limit", type=int, default=0, help="use only the first N clips (0 = all 2326)")
    ap.add_argument("--size", type=int, default=RenderSpec().size)
    ap.add_argument("--samples", type=int, default=300, help="samples for the decode-vs-render timing")
    ap.add_argument("--write-doc", default="", help="also write the markdown table to this file")
    return ap


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    load = [os.getloadavg()[0]]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = sorted(Path(a.labels).glob("*.mat"))
        files = files[: a.limit] if a.limit else files
        kp_path = tmp / "kp.zarr"
        t0 = time.perf_counter()
        report = ingest(
            files, out=kp_path, fmt="penn-action", options=ReadOptions(layout=get_layout("penn13"))
        )
        ingest_s = time.perf_counter() - t0
        kp = KeypointStore.open(kp_path)
        n_clips, n_frames = len(kp), int(kp.table.n_frames.sum())
        base = RenderSpec(channels="joints+limbs", size=a.size)
        render(
            kp_path, tmp / "warm.zarr", replace(base, codec="none"), threads=1
        )  # compile/load kernels once
        shutil.rmtree(tmp / "warm.zarr")
        for codec in ("zstd", "lz4", "none"):  # each at the project's default level for it (DEFAULT_LEVEL)
            for threads in (1, 2):
                out = tmp / f"{codec}-{threads}.zarr"
                t0 = time.perf_counter()
                render(kp_path, out, replace(base, codec=codec, level=None), threads=threads)
                dt = time.perf_counter() - t0
                rows.append((codec, threads, dt, du(out)))
                if not (codec == "zstd" and threads == 2):
                    shutil.rmtree(out)
        hm = HeatmapStore.open(tmp / "zstd-2.zarr")
        decode_ms, render_ms = time_samples(kp, hm, base, a.samples)
    load.append(os.getloadavg()[0])

    c = 27
    raw_f32 = n_frames * c * a.size * a.size * 4
    raw_u8 = raw_f32 // 4
    cmd = command_line("bench_render.py", argv)
    lines = [
        "## Rendering Penn Action into the heatmap store",
        "",
        f"Command: `{cmd}`  ",
        f"{n_clips} clips, {n_frames:,} frames, penn13 joints+limbs = {c} channels, {a.size} x {a.size}, uint8; "
        f"ingest of the .mat files took {ingest_s:.1f} s ({report.n_kept / ingest_s:,.0f} clips/s). "
        f"1-min load average {load[0]:.2f} before, {load[1]:.2f} after; {time.strftime('%Y-%m-%d')}, "
        f"{os.cpu_count()} cores.",
        "",
        "| codec | threads | wall s | clips/s | frames/s | frames/s per thread | stored MB | MB/clip "
        "| raw float32 / stored | raw uint8 / stored |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for codec, threads, dt, size in rows:
        lines.append(
            f"| {codec} | {threads} | {dt:.1f} | {n_clips / dt:,.0f} | {n_frames / dt:,.0f} "
            f"| {n_frames / dt / threads:,.0f} | {size / 1e6:,.0f} | {size / n_clips / 1e6:.3f} "
            f"| {ratio(raw_f32 / size)} | {ratio(raw_u8 / size)} |"
        )
    lines += [
        "",
        f"Raw size of all frames: float32 {raw_f32 / 1e9:.1f} GB, uint8 {raw_u8 / 1e9:.1f} GB. Uncompressed, the "
        "store is larger than raw uint8 because every clip starts on a 16-frame chunk boundary (padding).",
        "",
        f"Per 48-frame training sample (median over {a.samples} random clips, 1 thread): read + decode from the "
        f"zstd store **{decode_ms:.3f} ms**; rendering the same frames from keypoints with our kernels "
        f"{render_ms:.3f} ms; the anchor renders a 17-channel 56 px sample in 10-14 ms (kernel table above). "
        "With kernels this fast, rendering on the fly would cost about as much as reading the cache; the store "
        "still earns its place as a versioned, verified artifact that needs no keypoint preprocessing per sample "
        "and no numba in the loader, but its speed-up is over the anchor's numpy rendering, not over ours.",
    ]
    emit("\n".join(lines) + "\n", a.write_doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
