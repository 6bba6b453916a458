#!/usr/bin/env python
"""Loader throughput: one full training sample (augmentation included), from our heatmap store and from our
keypoint store, vs the anchor's on-the-fly PoseC3D pipeline.

    .venv/bin/python bench/bench_loader.py            # prints a markdown table (bench/run_all.sh collects it)

Same inputs, same machine, one run: the anchor's synthetic samples (`synth_sample` of
../shared/anchor/anchor_heatmaps.py: 100-frame 1080p clips, 1 person, COCO-17, seed 0). The anchor times its
NTU60-XSub train pipeline (UniformSampleFrames 48 -> PoseCompact -> Resize -> RandomResizedCrop -> Resize 56 ->
Flip -> GeneratePoseTarget) per sample in one process with math threads pinned to 1. We write the same clips as
a PYSKL pickle, ingest and render them once (64 px, as the anchor's PoseCompact + Resize(-1, 64)), then time what
a DataLoader worker does per sample: UniformSampleFrames(48) + read + decode (`HeatmapClips.__getitem__`), one
thread. Random resized crop + flip run batched on the device in our trainer; their CPU cost is reported too (for
a CPU-only machine), per sample in a batch of 8.

`--source keypoints` (train/sources/keypoints.py) is timed the same way: the worker's UniformSampleFrames + PoseC3D
geometry on coordinates + render (numba, uint8, 48 x C x 56 x 56), plus the uint8 -> float model input per
sample in a batch of 8; and with the torch renderer the worker's coordinates + `render_torch` on this CPU per
sample in a batch of 8 (on a GPU that part runs on the device: bench/gpu_check.sh).

Last, what checking that the frames read are the clip's own costs (`time_clip_check`); `--clip-check-only` runs
just that part (no anchor venv needed).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(SHARED / "anchor"))
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from bench_kernels import anchor_python  # noqa: E402
from common import command_line, emit, ratio  # noqa: E402

from etl.heatmaps.spec import (  # noqa: E402
    CODECS,
    DEFAULT_LEVEL,
    RenderSpec,
)

DEFAULTS = RenderSpec()  # the store is the project's default (`actrec-etl render`), unless --codec says
ANCHOR_SIZE = 64  # the anchor's PoseCompact + Resize(-1, 64)
# the demo's training length (params.yaml train.epochs): what the clip check's one-off first read is spread over
DEMO_EPOCHS = int(yaml.safe_load((ROOT / "params.yaml").read_text())["train"]["epochs"])
ANCHOR_DRIVER = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import anchor_heatmaps as A
import numpy as np
n, runs, seed = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
P = A.build_pipelines()
rng = np.random.default_rng(seed)
annos = [A.synth_sample(rng, 100, 1, 1080, 1920, i % 60, 0.0, f"synth_{i:04d}") for i in range(n)]
infos = [A.as_data_info(x) for x in annos]
res = {v: A.time_variant(P["variants"][v], infos, runs, seed) for v in ("train_joint", "train_limb")}
print(json.dumps({v: r["ms_per_sample_median"] for v, r in res.items()}))
"""


def run_anchor(samples: int, runs: int, seed: int) -> dict:
    cmd = [
        str(anchor_python()),
        "-c",
        ANCHOR_DRIVER,
        str(SHARED / "anchor"),
        str(samples),
        str(runs),
        str(seed),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def build_stores(tmp: Path, samples: int, seed: int, codec: str) -> dict[str, Path]:
    import anchor_heatmaps as A  # numpy-only at import time

    from etl.commands.ingest import ingest
    from etl.commands.render import render
    from etl.heatmaps.spec import RenderSpec
    from etl.pose.skeleton import get_layout
    from etl.readers import ReadOptions

    rng = np.random.default_rng(seed)
    annos = [A.synth_sample(rng, 100, 1, 1080, 1920, i % 60, 0.0, f"synth_{i:04d}") for i in range(samples)]
    pkl = tmp / "anchor_synth.pkl"
    names = [a["frame_dir"] for a in annos]
    with open(pkl, "wb") as f:
        pickle.dump({"split": {"xsub_train": names}, "annotations": annos}, f)
    kp = tmp / "kp.zarr"
    ingest([pkl], out=kp, fmt="pyskl", options=ReadOptions(layout=get_layout("coco17")))
    stores = {"keypoints": kp}
    for variant, channels in (("joints", "joints"), ("limbs", "limbs")):
        stores[variant] = tmp / f"{variant}.zarr"
        render(
            kp,
            stores[variant],
            RenderSpec(channels=channels, size=ANCHOR_SIZE, codec=codec),  # the codec's default level
            threads=1,
        )
    return stores


def time_ours(store: Path, runs: int) -> dict:
    from etl.stores.heatmap_store import HeatmapStore
    from train.sources.heatmap_augment import random_resized_crop_flip
    from train.sources.heatmaps import HeatmapClips
    from train.sources.views import to_model_input

    hm = HeatmapStore.open(store)
    ds = HeatmapClips(store, np.arange(len(hm)), hm.table.label.to_numpy(), clip_len=48, train=True)
    for i in range(2):
        ds[(i, 0)]  # warm-up: open the store
    times = []
    for epoch in range(runs):
        for i in range(len(ds)):
            t0 = time.perf_counter()
            ds[(i, epoch)]
            times.append(time.perf_counter() - t0)
    batch = torch.stack([ds[(i, 0)][0][0] for i in range(8)])  # (8, T, C, 64, 64) uint8
    g = torch.Generator().manual_seed(0)
    aug = []
    for _ in range(5):
        t0 = time.perf_counter()
        x = to_model_input(batch, 255.0)
        random_resized_crop_flip(x, size=56, flip_permutation=hm.flip_permutation, generator=g)
        aug.append((time.perf_counter() - t0) / len(batch))
    return {
        "ms": statistics.median(times) * 1e3,
        "aug_ms": statistics.median(aug) * 1e3,
        "stored_bytes_per_clip": sum(p.stat().st_size for p in store.rglob("*") if p.is_file()) / len(hm),
    }


def time_clip_check(store: Path, runs: int) -> dict:
    """What checking that the frames are the clip's own costs per sample (`HeatmapStore.read_clip`, see
    etl/stores/shard_reader.py), against the unchecked read of the same 48 frames (`ShardedFrameReader.read` and the
    store-identity check: `read_clip` before the check): a clip's first read in a run (every chunk of it decoded and
    its checksum computed) and every later read (a 4-byte crc32c compared per chunk). Medians, ms/sample."""
    from etl.stores.heatmap_store import HeatmapStore
    from train.seeding import numpy_rng
    from train.sources.sampling import sample_train

    hm = HeatmapStore.open(store)
    rows = range(len(hm))
    picks = {
        (epoch, r): sample_train(int(hm.n_frames[r]), 48, numpy_rng(0, "clip", epoch, r))
        for epoch in range(runs + 1)
        for r in rows
    }
    times: dict[str, list[float]] = {
        "first_checked": [],
        "first_plain": [],
        "later_checked": [],
        "later_plain": [],
    }

    def unchecked(store: HeatmapStore, r: int, frames: np.ndarray) -> None:
        """HeatmapStore.read_clip before the clip check: the frames, each chunk's crc32c, the store's identity."""
        store._reader.read(int(hm.clip_start[r]) + frames)
        store.check_unchanged()

    def timed(epoch: int, when: str) -> None:
        reads = [("checked", checked.read_clip), ("plain", lambda r, f: unchecked(plain, r, f))]
        for r in rows:  # the two reads of a clip back to back, alternating which goes first: drift cancels
            frames = picks[(epoch, r)]
            for name, read in reads if r % 2 else reads[::-1]:
                t0 = time.perf_counter()
                read(r, frames)
                times[f"{when}_{name}"].append(time.perf_counter() - t0)

    for _ in range(runs):  # fresh readers each pass: every clip's first read
        checked, plain = HeatmapStore.open(store), HeatmapStore.open(store)
        for s in (checked, plain):
            s.read_clip(0, np.arange(1))  # open the fast reader (not a clip read we time)
            s._reader._checked.clear()
            s._reader._index.clear()
        timed(0, "first")
    for epoch in range(1, runs + 1):  # the same readers on: clips already checked
        timed(epoch, "later")
    out = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    # the later read's own extra work, without the read around it (which host noise blurs): per sample, one
    # table lookup and compare per chunk it decodes
    table, fb, own = checked._reader._checked, checked._reader.chunk_frames, []
    for r in rows:
        chunks = np.unique((int(hm.clip_start[r]) + picks[(1, r)]) // fb).tolist()
        t0 = time.perf_counter()
        for _ in range(100):
            for c in chunks:
                table.get(c)
        own.append((time.perf_counter() - t0) / 100)
    out["later_own"] = statistics.median(own) * 1e3
    for when in (
        "first",
        "later",
    ):  # paired: the median of each clip's checked - unchecked (host noise cancels)
        pairs = zip(times[f"{when}_checked"], times[f"{when}_plain"], strict=True)
        out[f"{when}_extra"] = statistics.median(c - u for c, u in pairs) * 1e3
    return out


def clip_check_lines(check: dict) -> list[str]:
    def pct(extra: float, base: float) -> str:
        return f"{100 * extra / base:+.1f}%"

    # per training sample over a run: every read pays the later-read check, each clip's first read its extra once
    amortized = check["later_own"] + check["first_extra"] / DEMO_EPOCHS

    return [
        "### What checking a clip's frames costs (the training read path)",
        "",
        "The read path refuses frames that are not the ones rendered for the clip (swapped shard files, a "
        "chunk rewritten with a fixed-up crc32c: what `actrec-etl verify` reports). Per 48-frame sample of the "
        "joints store, one thread, medians: `unchecked` reads the same frames checking only each chunk's "
        "crc32c (the read path before the check); `checked` is `HeatmapStore.read_clip`. A clip's first read in "
        "a run decodes all of its chunks and computes its checksum; later reads compare each chunk's "
        "4-byte crc32c with the one remembered then.",
        "",
        "| read | unchecked ms/sample | checked ms/sample | cost: median of the paired differences |",
        "|---|---|---|---|",
        f"| a clip's first read in a run | {check['first_plain']:.3f} | {check['first_checked']:.3f} "
        f"| {check['first_extra']:+.3f} ms ({pct(check['first_extra'], check['first_plain'])}) |",
        f"| every later read | {check['later_plain']:.3f} | {check['later_checked']:.3f} "
        f"| {check['later_extra']:+.3f} ms ({pct(check['later_extra'], check['later_plain'])}) |",
        "",
        f"The later read's own extra work, timed alone (the chunk-table lookups and compares of a sample): "
        f"{check['later_own'] * 1e3:.1f} us ({pct(check['later_own'], check['later_plain'])} of the unchecked "
        "read); the paired difference above is that plus host noise.",
        "",
        "The loader's workers share what they checked (etl.stores.shard_reader.CheckedChunks, made before they fork), "
        "so a run pays the first-read row once per clip and every other read the check's own work: over the demo's "
        f"{DEMO_EPOCHS} epochs (params.yaml) the cost per training sample comes to "
        f"{amortized:.3f} ms, {pct(amortized, check['later_plain'])} of the unchecked read. Evaluation reads each clip once: it pays "
        "the first-read row.",
    ]


def time_keypoints(kp_store: Path, channels: str, runs: int) -> dict:
    """Full train samples from the keypoint store, numba in the worker and torch (CPU) after it."""
    from etl.heatmaps.spec import RenderSpec
    from train.sources.keypoints import KeypointClips, KeypointSource, collate_keypoints
    from train.sources.render_torch import quantize_like, render_torch
    from train.sources.views import to_model_input

    src = KeypointSource(kp_store, RenderSpec(channels=channels, size=ANCHOR_SIZE))
    rows, labels = np.arange(len(src)), src.table.label.to_numpy()
    out = {}
    for renderer in ("numba", "torch"):
        ds = KeypointClips(src, rows, labels, clip_len=48, train=True, input_size=56, renderer=renderer)
        ds[(0, 0)]  # warm-up: numba kernels loaded from the cache
        times = []
        for epoch in range(runs):
            for i in range(len(ds)):
                t0 = time.perf_counter()
                ds[(i, epoch)]
                times.append(time.perf_counter() - t0)
        items = [ds[(i, 0)] for i in range(8)]
        post = []
        for _ in range(5):
            t0 = time.perf_counter()
            if renderer == "numba":
                to_model_input(torch.stack([v[0] for v, _ in items]), 255.0)
            else:
                (kp, sc), _ = collate_keypoints(items)
                limbs = [tuple(x) for x in src.layout.limbs] if channels == "limbs" else None
                x = render_torch(kp, sc, (56, 56), with_joints=channels == "joints", limbs=limbs)
                quantize_like(x, "uint8")
            post.append((time.perf_counter() - t0) / len(items))
        out[renderer] = {"ms": statistics.median(times) * 1e3, "post_ms": statistics.median(post) * 1e3}
    return out


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--codec",
        default=DEFAULTS.codec,
        choices=CODECS,
        help=f"codec of the heatmap store, at its default level (default: {DEFAULTS.codec}, as actrec-etl render)",
    )
    ap.add_argument("--write-doc", default="", help="also write the markdown table to this file")
    ap.add_argument(
        "--clip-check-only",
        action="store_true",
        help="time only the clip check of the read path (no anchor needed): its section of the table",
    )
    return ap


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    torch.set_num_threads(1)
    load = [os.getloadavg()[0]]
    if a.clip_check_only:
        return clip_check_only(a, argv, load)
    anchor = run_anchor(a.samples, a.runs, a.seed)
    with tempfile.TemporaryDirectory() as tmp:
        stores = build_stores(Path(tmp), a.samples, a.seed, a.codec)
        ours = {v: time_ours(stores[v], a.runs) for v in ("joints", "limbs")}
        check = time_clip_check(stores["joints"], a.runs)
        kps = {v: time_keypoints(stores["keypoints"], v, a.runs) for v in ("joints", "limbs")}
    load.append(os.getloadavg()[0])
    cmd = command_line("bench_loader.py", argv)
    lines = [
        "## Loader: a training sample from the store vs the anchor's on-the-fly pipeline",
        "",
        f"Command: `{cmd}`  ",
        f"Heatmap store: {a.codec} at level {DEFAULT_LEVEL[a.codec]}"
        f"{' (the default of `actrec-etl render`)' if a.codec == DEFAULTS.codec else ''}, {ANCHOR_SIZE} px.  ",
        f"{a.samples} synthetic 100-frame 1080p COCO-17 clips (the anchor's `synth_sample`, seed {a.seed}), "
        f"{a.runs} passes, medians, one thread/process each; 1-min load average {load[0]:.2f} before, "
        f"{load[1]:.2f} after; {time.strftime('%Y-%m-%d')}.",
        "",
        "| variant | anchor train pipeline ms/sample | ours: sample + read + decode ms/sample | speed-up per core "
        "| ours samples/s per worker | + crop/flip on CPU ms/sample | speed-up incl. CPU crop/flip "
        "| stored KB/clip (100 frames) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v, key in (("joints", "train_joint"), ("limbs", "train_limb")):
        o, an = ours[v], anchor[key]
        lines.append(
            f"| {v} (17 ch, 48 frames) | {an:.2f} | {o['ms']:.3f} | {ratio(an / o['ms'])} | {1e3 / o['ms']:,.0f} "
            f"| {o['aug_ms']:.3f} | {ratio(an / (o['ms'] + o['aug_ms']))} | {o['stored_bytes_per_clip'] / 1e3:.1f} |"
        )
    lines += [
        "",
        "Ours returns 48 x 17 x 64 x 64 uint8 (crop and flip to 56 px happen batched on the GPU); the anchor "
        "returns 17 x 48 x 56 x 56 float32 after its CPU crop/flip. The anchor crops the keypoints before it "
        "renders, so its crop is nearly free; ours resamples rendered heatmaps (`grid_sample`, batched), which "
        "is cheap on a GPU but on one CPU core costs more than the anchor's whole pipeline: without a GPU, "
        "augmentation, not reading the store, is the data cost.",
        "",
        "### A full training sample, augmentation included, from each source",
        "",
        "Per sample, one thread; `heatmaps` = read + decode + crop/flip of the cached maps on the CPU (the two "
        "columns above, added); `keypoints, numba` = the loader worker's sampling + PoseC3D geometry on "
        "coordinates + rendering 48 x 17 x 56 x 56 uint8, then the float model input (batch of 8); "
        "`keypoints, torch (CPU)` = the worker's coordinates (what it ships) + `render_torch` on this CPU "
        "(batch of 8), which on a GPU runs on the device instead.",
        "",
        "| variant | anchor ms/sample | source | worker ms/sample | + batch step ms/sample | total ms/sample "
        "| speed-up per core |",
        "|---|---|---|---|---|---|---|",
    ]
    for v, key in (("joints", "train_joint"), ("limbs", "train_limb")):
        an, o = anchor[key], ours[v]
        rows = [("heatmaps (cache)", o["ms"], o["aug_ms"])]
        rows += [
            (f"keypoints, {r}{' (CPU)' if r == 'torch' else ''}", k["ms"], k["post_ms"])
            for r, k in kps[v].items()
        ]
        for name, worker, post in rows:
            lines.append(
                f"| {v} | {an:.2f} | {name} | {worker:.3f} | {post:.3f} | {worker + post:.3f} "
                f"| {ratio(an / (worker + post))} |"
            )
    lines += ["", *clip_check_lines(check)]
    emit("\n".join(lines) + "\n", a.write_doc)
    return 0


def clip_check_only(a, argv, load: list[float]) -> int:
    """The clip-check table alone, on the same synthetic clips (keypoints from the anchor's `synth_sample`)."""
    with tempfile.TemporaryDirectory() as tmp:
        check = time_clip_check(build_stores(Path(tmp), a.samples, a.seed, a.codec)["joints"], a.runs)
    load.append(os.getloadavg()[0])
    lines = clip_check_lines(check)
    lines.insert(
        2,
        f"Command: `{command_line('bench_loader.py', argv)}`; {a.codec} store, {ANCHOR_SIZE} px, {a.samples} "
        f"synthetic 100-frame clips, {a.runs} passes; 1-min load average {load[0]:.2f} before, {load[1]:.2f} "
        f"after; {time.strftime('%Y-%m-%d')}.\n",
    )
    emit("\n".join(lines) + "\n", a.write_doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
