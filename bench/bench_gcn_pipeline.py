"""A graph network's training sample, data side: our coordinate source (train/sources/coordinates.py) against
MMAction2 1.2's ST-GCN++ train pipeline (bench/anchor_gcn_pipeline.py, in the anchor venv), same clips, one core.

    .venv/bin/python bench/bench_gcn_pipeline.py [--clips 300 --passes 3 --rounds 3 --streams j b jm bm]
        [--store KEYPOINTS.zarr] [--core 0] [--write-doc F] [--json-out F]

Without --store, Penn Action (../shared/data/penn_action/labels) is ingested into a keypoint store in a temporary
folder (`python -m etl.cli ingest ... --format penn-action --layout penn13`) and `--clips` clips evenly spaced over
it are used. Both sides get the same clips: ours reads them from the store (CoordinateSource, which reads the
store into memory once, as fit does); the anchor gets them as PYSKL annotation dicts in an npz (missing joints
(0, 0) with score 0, PYSKL's convention), which its PoseDataset serialises as it does a pickle file's.

Per sample, ours is CoordinateClips.__getitem__ as fit's train loader calls it (UniformSampleFrames(100) over
the features -- PreNormalize2D and the stream -- that CoordinateSource computed once per clip when it opened the
store, persons padded/cut to 2, torch tensor; fit's default adds no augmentation, as the config); the
anchor's is PoseDataset.__getitem__ with the stream's stgcnpp config train_pipeline. The process
pins itself to one core (the anchor subprocess inherits it), torch and BLAS threads 1. The two sides alternate
(anchor, ours, anchor, ...) so that a busy host slows both alike: each round is the median of `--passes` passes
over the clips (after 20 warm-up samples), the table gives each side's best round and their ratio, and
two costs of ours timed alone (the clip's RandomState per sample; opening the source, once per run: reading the
store and computing every clip's features).

Parity: for every clip and stream, the anchor's global numpy RandomState is set to the state of the RandomState
ours draws the clip's frames from (train.seeding.numpy_rng(seed, "clip", epoch, row)), so both sample the same
frame indices; the table says how many clips give the same indices and bit-identical (2, 100, V, 3) inputs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
PENN_LABELS = ROOT.parent / "shared" / "data" / "penn_action" / "labels"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from bench_kernels import anchor_python, cpu_name  # noqa: E402
from common import command_line, emit, ratio  # noqa: E402

from etl.stores.keypoint_store import KeypointStore  # noqa: E402
from train.config import STREAMS  # noqa: E402
from train.seeding import numpy_rng  # noqa: E402
from train.sources.coordinates import CoordinateSource  # noqa: E402
from train.sources.sampling import sample_train  # noqa: E402

CLIP_LEN = 100  # UniformSampleFrames(clip_len=100) in the stgcnpp configs
SEED = 0  # fit's --seed default
WARM_UP = 20  # samples before each side's timed passes (as anchor_gcn_pipeline.WARM_UP)
ANCHOR = ROOT / "bench" / "anchor_gcn_pipeline.py"


def ingest_penn(out: Path) -> None:
    """Penn Action's .mat labels -> a penn13 keypoint store at `out`, with the CLI a user runs."""
    cmd = [sys.executable, "-m", "etl.cli", "ingest", str(PENN_LABELS), "--format", "penn-action"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([*cmd, "--layout", "penn13", "--out", str(out)], cwd=ROOT, env=env, check=True,
                   capture_output=True)  # fmt: skip


def pick_rows(n_store: int, n: int) -> np.ndarray:
    """`n` store rows evenly spaced over all `n_store` (short and long clips alike), ascending."""
    return np.unique(np.linspace(0, n_store - 1, min(n, n_store)).round().astype(np.int64))


def write_clips(source: CoordinateSource, rows: np.ndarray, path: Path) -> None:
    """The clips at `rows` as the anchor's npz (bench/anchor_gcn_pipeline.py's docstring gives the keys)."""
    kps, scs, states = [], [], []
    for row in rows:
        kp, sc = source.kp.read_clip(int(row))  # (M, T, V, 2), (M, T, V), NaN where a joint is missing
        kps.append(np.nan_to_num(kp, nan=0.0).reshape(-1, *kp.shape[2:]))
        scs.append(np.nan_to_num(sc, nan=0.0).reshape(-1, sc.shape[2]))
        _, keys, pos, *_ = numpy_rng(SEED, "clip", 0, int(row)).get_state()  # epoch 0: what parity() draws
        states.append((keys, pos))
    table = source.table.iloc[rows]
    arrays = {
        "keypoint": np.concatenate(kps).astype(np.float32),
        "keypoint_score": np.concatenate(scs).astype(np.float32),
        "state_keys": np.stack([k for k, _ in states]).astype(np.uint32),
        "state_pos": np.array([p for _, p in states], np.int64),
    }
    for col in ("n_persons", "n_frames", "img_h", "img_w", "label"):
        arrays[col] = table[col].to_numpy(np.int64)
    if source.layout.name != "coco17":  # the configs' GenSkeFeat(dataset='coco') has coco17's bone pairs
        arrays["bone_pairs"] = np.array(list(enumerate(source.parents)), np.int64)  # (V, 2): (joint, parent)
    np.savez(path, **arrays)


def anchor(*args: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run([str(anchor_python()), str(ANCHOR), *args], check=True, capture_output=True, text=True,
                         env=env)  # fmt: skip
    return out.stdout


def time_ours(ds, passes: int) -> float:
    """Median seconds per sample over `passes` passes (epochs 1, 2, ...) after WARM_UP samples."""
    for i in range(min(len(ds), WARM_UP)):
        ds[(i, 0)]
    per_pass = []
    for epoch in range(1, passes + 1):
        t0 = time.perf_counter()
        for i in range(len(ds)):
            ds[(i, epoch)]
        per_pass.append((time.perf_counter() - t0) / len(ds))
    return float(np.median(per_pass))


def time_rng(ds, passes: int) -> float:
    """Best-pass seconds per sample of the clip's RandomState alone (numpy_rng: a SeedSequence hash + RandomState
    seeding); the rest of a sample is UniformSampleFrames, the person padding and the tensor."""
    rows = [int(r) for r in ds.rows]
    per_pass = []
    for epoch in range(1, passes + 1):
        t0 = time.perf_counter()
        for row in rows:
            numpy_rng(SEED, "clip", epoch, row)
        per_pass.append((time.perf_counter() - t0) / len(rows))
    return min(per_pass)


def time_open(store: Path, stream: str, passes: int) -> float:
    """Best seconds per clip to open CoordinateSource on the whole store: read every clip (checksums checked) and
    compute its features (pre-normalise + stream over all its frames), once per run, before any sample."""
    best = float("inf")
    for _ in range(passes):
        t0 = time.perf_counter()
        src = CoordinateSource(store, stream)
        best = min(best, (time.perf_counter() - t0) / len(src.table))
    return best


def check_parity(ds, n_frames: np.ndarray, rows: np.ndarray, got: dict, stream: str) -> dict:
    """Ours at epoch 0 against the anchor's outputs for the same RandomState: shapes, indices, values."""
    ours = np.stack([ds[(i, 0)][0].numpy() for i in range(len(ds))])  # (N, 2, 100, V, 3)
    frames = np.stack([sample_train(int(t), CLIP_LEN, numpy_rng(SEED, "clip", 0, int(r)))
                       for t, r in zip(n_frames, rows, strict=True)])  # fmt: skip
    theirs, their_frames = got[f"{stream}__inputs"], got[f"{stream}__frame_inds"]
    same_shape = ours.shape == theirs.shape
    return {
        "shape_ours": list(ours.shape[1:]),
        "shape_anchor": list(theirs.shape[1:]),
        "same_frames": int((frames == their_frames).all(axis=1).sum()),
        "identical": int((ours == theirs).reshape(len(ours), -1).all(axis=1).sum()) if same_shape else 0,
        "max_abs_diff": float(np.abs(ours - theirs).max()) if same_shape else float("nan"),
        "clips": len(ours),
    }


def store_read_ms(path: Path, rows: np.ndarray) -> tuple[float, float]:
    """(ms per clip to open the store and read all of it, as CoordinateSource does once per run; median ms of
    KeypointStore.read_clip for one clip, what reading per sample would cost instead)."""
    t0 = time.perf_counter()
    kp = KeypointStore.open(path)
    kp.read_range(0, len(kp))
    whole = (time.perf_counter() - t0) / len(kp)
    one = []
    for row in rows[:50]:
        t1 = time.perf_counter()
        kp.read_clip(int(row))
        one.append(time.perf_counter() - t1)
    return whole * 1e3, float(np.median(one)) * 1e3


def measure(store: Path, a, tmp: Path) -> dict:
    sources = {s: CoordinateSource(store, s) for s in a.streams}
    first = sources[a.streams[0]]
    rows = pick_rows(len(first.table), a.clips)
    n_frames = first.table.n_frames.to_numpy()[rows]
    clips = tmp / "clips.npz"
    write_clips(first, rows, clips)
    datasets = {s: src.dataset(src.table.iloc[rows], clip_len=CLIP_LEN, train=True, seed=SEED)
                for s, src in sources.items()}  # fmt: skip

    anchor("parity", str(clips), str(tmp / "anchor_out.npz"), *a.streams)
    with np.load(tmp / "anchor_out.npz") as z:
        got = {k: z[k] for k in z.files}
    parity = {s: check_parity(datasets[s], n_frames, rows, got, s) for s in a.streams}

    load_before = os.getloadavg()[0]
    anchor_rounds = {s: [] for s in a.streams}
    ours_rounds = {s: [] for s in a.streams}
    versions = {}
    for _ in range(a.rounds):
        report = json.loads(anchor("time", str(clips), str(a.passes), *a.streams).strip().splitlines()[-1])
        versions = report["versions"]
        for s in a.streams:
            anchor_rounds[s].append(float(np.median(report["s_per_sample"][s])))
            ours_rounds[s].append(time_ours(datasets[s], a.passes))
    rng_s = {s: time_rng(datasets[s], max(a.passes, 3)) for s in a.streams}
    open_s = {s: time_open(store, s, max(a.passes, 3)) for s in a.streams}
    whole_ms, one_ms = store_read_ms(store, rows)
    return {
        "anchor_rounds": anchor_rounds,
        "ours_rounds": ours_rounds,
        "anchor_s": {s: min(v) for s, v in anchor_rounds.items()},
        "ours_s": {s: min(v) for s, v in ours_rounds.items()},
        "parity": parity,
        "ours_rng_s": rng_s,
        "ours_open_s": open_s,
        "store_read_ms_per_clip": whole_ms,
        "read_clip_ms": one_ms,
        "clips": len(rows),
        "store_clips": len(first.table),
        "frames": [int(n_frames.min()), int(np.median(n_frames)), int(n_frames.max())],
        "persons": sorted({int(m) for m in first.table.n_persons.to_numpy()[rows]}),
        "layout": first.layout.name,
        "joints": first.layout.n_joints,
        "bone_pairs_replaced": first.layout.name != "coco17",
        "passes": a.passes,
        "anchor_versions": versions,
        "load": (load_before, os.getloadavg()[0]),
    }


def parity_cell(p: dict) -> str:
    if p["shape_ours"] != p["shape_anchor"]:
        return f"shapes differ: ours {tuple(p['shape_ours'])}, MMAction2 {tuple(p['shape_anchor'])}"
    n = p["clips"]
    return (f"same frames {p['same_frames']}/{n}, identical {p['identical']}/{n}, max abs diff "
            f"{p['max_abs_diff']:.2g}")  # fmt: skip


def markdown(r: dict, cmd: str) -> str:
    streams = list(r["anchor_s"])
    shape = tuple(r["parity"][streams[0]]["shape_ours"])
    v = r["anchor_versions"]
    lines = [
        "## Graph networks: a training sample's data pipeline vs MMAction2 (`bench/bench_gcn_pipeline.py`)",
        "",
        f"`{cmd}`, {r['date']}, {r['cpu']}, pinned to one core (core {r['core']}), torch and BLAS threads 1; "
        f"torch {r['torch']}, numpy {r['numpy']} (MMAction2 {v.get('mmaction2')}: torch {v.get('torch')}, numpy "
        f"{v.get('numpy')}); load {r['load'][0]:.1f} -> {r['load'][1]:.1f}.",
        f"{r['source']}: {r['clips']} of its {r['store_clips']} clips, evenly spaced ({r['frames'][0]} / "
        f"{r['frames'][1]} / {r['frames'][2]} frames min / median / max, {' or '.join(map(str, r['persons']))} "
        f"person(s), {r['layout']}, {r['joints']} joints); output {shape} per sample (persons, frames, joints, "
        f"channels). Each side's best of {r['rounds']} alternating rounds, a round the median of {r['passes']} "
        "passes over the clips.",
        "",
        "| stream | MMAction2 ms/sample | actrec ms/sample | vs MMAction2 | actrec: RandomState ms/sample "
        "| actrec: open ms/clip, once per run | parity (same RandomState) |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in streams:
        a, o = r["anchor_s"][s], r["ours_s"][s]
        parts = f"{r['ours_rng_s'][s] * 1e3:.3f} | {r['ours_open_s'][s] * 1e3:.3f}"
        lines.append(
            f"| {s} | {a * 1e3:.3f} | {o * 1e3:.3f} | {ratio(a / o)} | {parts} | {parity_cell(r['parity'][s])} |"
        )
    rounds = "; ".join(
        f"{s}: MMAction2 {', '.join(f'{x * 1e3:.3f}' for x in r['anchor_rounds'][s])}, actrec "
        f"{', '.join(f'{x * 1e3:.3f}' for x in r['ours_rounds'][s])}"
        for s in streams
    )
    bones = (
        "For b and bm, MMAction2's JointToBone knows only the NTU, OpenPose and COCO pairs (a fixed list per "
        f"`dataset`, no argument), so the {r['layout']} (joint, parent) pairs that ours uses (train/models/graph.py "
        "`bone_parents`) replace the COCO ones on the JointToBone instance the config's GenSkeFeat builds; "
        "everything else is the config's pipeline as it is."
        if r["bone_pairs_replaced"]
        else "The configs' GenSkeFeat(dataset='coco') bone pairs are coco17's, the layout of this store."
    )
    lines += [
        "",
        f"All rounds, ms/sample: {rounds}.",
        "",
        "Both sides: PreNormalize2D (centred on the image, scaled by its half size), the stream (GenSkeFeat, "
        "score as third channel), UniformSampleFrames(100) (one random view), PoseDecode, persons padded with "
        "zeros to 2 (FormatGCNInput), a torch tensor; fit's default adds no augmentation and neither does the "
        "config. MMAction2 runs all of it per sample from the annotations in memory (its PoseDataset's serialised "
        "list, one `pickle.loads` per sample); ours computes the first two once per clip when CoordinateSource "
        "opens the store (they draw nothing at random without --strong-augment: the same in every epoch; the "
        "open column, which is not in the per-sample figure), so a sample is the RandomState, the sampling, the "
        f"padding and the tensor. {bones} Of the open cost, reading the store into memory is "
        f"{r['store_read_ms_per_clip']:.3f} ms per clip once per run "
        f"(all {r['store_clips']} clips, checksums checked); reading a clip from the store for every sample "
        f"instead (`KeypointStore.read_clip`) would cost {r['read_clip_ms']:.3f} ms each.",
        "",
        "Parity: the anchor's global numpy RandomState is set, per clip, to the state our loader draws that clip's "
        'frames from, so both sample the same frame indices; "identical" counts clips whose whole '
        f"{shape} float32 input is bit for bit the same.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, help="a 2D keypoint store to read (default: ingest Penn Action)")
    ap.add_argument("--clips", type=int, default=300, help="clips evenly spaced over the store")
    ap.add_argument("--streams", nargs="+", default=list(STREAMS), choices=STREAMS)
    ap.add_argument("--passes", type=int, default=3, help="timed passes over the clips per round")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds of anchor and ours")
    ap.add_argument("--core", type=int, default=0, help="the one CPU core both sides run on")
    ap.add_argument("--write-doc", default="", help="also write the markdown table to this file")
    ap.add_argument("--json-out", help="also write the raw numbers here")
    a = ap.parse_args(argv)
    if min(a.clips, a.passes, a.rounds) < 1:
        ap.error("--clips, --passes and --rounds must be at least 1")

    with tempfile.TemporaryDirectory(prefix="bench_gcn_pipeline_") as tmp:
        store = a.store
        if store is None:
            store = Path(tmp) / "penn_keypoints.zarr"
            ingest_penn(store)
        affinity = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {a.core})  # one core for both sides: the anchor subprocess inherits it
        torch.set_num_threads(1)
        try:
            r = measure(store, a, Path(tmp))
        finally:
            os.sched_setaffinity(0, affinity)
    r.update({
        "source": "Penn Action" if a.store is None else f"keypoint store {a.store.name}",
        "rounds": a.rounds,
        "core": a.core,
        "cpu": cpu_name(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "date": time.strftime("%Y-%m-%d"),
    })  # fmt: skip
    emit(markdown(r, command_line("bench_gcn_pipeline.py", argv)), a.write_doc)
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(r, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
