#!/usr/bin/env python
"""Heatmap kernel benchmark: etl.heatmaps.kernels vs the anchor's GeneratePoseTarget, same inputs, same machine, one run.

    .venv/bin/python bench/bench_kernels.py                 # prints the markdown table (bench/run_all.sh)
    .venv/bin/python bench/bench_kernels.py --no-anchor      # ours only, no ratios

The anchor side runs in the anchor venv (`bench/anchor_env.sh` creates it if missing) as a subprocess: it builds
the synthetic samples of `../shared/anchor/anchor_heatmaps.py` (100-frame 1080p clips, 1 person, seed 0), runs
the NTU60-XSub train geometry, times GeneratePoseTarget alone with math threads pinned to 1 (its
`time_gpt_only`), and saves the exact GeneratePoseTarget inputs, which we then render here: 48 frames x 17
channels x 56 x 56. Numbers are medians of per-sample wall times (the host stalls now and then).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared"
ANCHOR_DIR = SHARED / "anchor"
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "bench"))
from common import command_line, emit, ratio  # noqa: E402

from etl.heatmaps.kernels import render_heatmaps, set_threads  # noqa: E402
from etl.pose.skeleton import COCO17  # noqa: E402

LIMBS = np.array(COCO17.limbs)
VARIANTS = {"joints": (True, None), "limbs": (False, LIMBS)}  # with_joints, limbs
DTYPES = (np.float32, np.uint8)

# Runs inside the anchor venv: argv = anchor_dir, npz_out, samples, runs, seed.
ANCHOR_DRIVER = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import anchor_heatmaps as A  # pins OMP/BLAS threads to 1 before numpy is imported
import numpy as np
npz_out, n, runs, seed = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
P = A.build_pipelines()
rng = np.random.default_rng(seed)  # the same stream as anchor_heatmaps.py --samples n --seed seed
annos = [A.synth_sample(rng, 100, 1, 1080, 1920, i % 60, 0.0, f"synth_{i:04d}") for i in range(n)]
pre = A.geo_outputs(P, [A.as_data_info(x) for x in annos], seed)
make = {"joints": P["gpt_joint"], "limbs": P["gpt_limb"]}
res = {v: A.time_gpt_only(make[v], pre, runs) for v in make}
ref = {v: make[v]()(dict(pre[0]))["imgs"] for v in make}
np.savez(npz_out, keypoint=np.stack([p["keypoint"].astype(np.float32) for p in pre]),
         score=np.stack([p["keypoint_score"].astype(np.float32) for p in pre]),
         img_shape=np.array([p["img_shape"] for p in pre]), ref_joints=ref["joints"], ref_limbs=ref["limbs"])
print(json.dumps({"results": res, "numpy": np.__version__}))
"""


def anchor_python() -> Path:
    venv = Path(os.environ.get("ANCHOR_VENV", Path.home() / ".cache" / "actrec-anchor-venv"))
    if not (venv / "bin" / "python").exists():
        out = subprocess.run(["bash", str(ROOT / "bench" / "anchor_env.sh")], check=True, capture_output=True)
        venv = Path(out.stdout.decode().strip().splitlines()[-1])
    return venv / "bin" / "python"


def run_anchor(tmp: Path, samples: int, runs: int, seed: int) -> tuple[dict, dict]:
    npz = tmp / "anchor_inputs.npz"
    cmd = [
        str(anchor_python()),
        "-c",
        ANCHOR_DRIVER,
        str(ANCHOR_DIR),
        str(npz),
        str(samples),
        str(runs),
        str(seed),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    with np.load(npz) as z:
        data = {k: z[k] for k in z.files}
    return report, data


def synthetic_inputs(samples: int, seed: int) -> dict:
    """Without the anchor: random walks of 17 joints on the 56 x 56 canvas (same shapes, no parity check)."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(12, 44, (samples, 1, 1, 17, 2))
    kp = base + np.cumsum(rng.normal(0, 0.3, (samples, 1, 48, 17, 2)), axis=2)
    sc = rng.uniform(0.3, 1.0, (samples, 1, 48, 17))
    return {"keypoint": kp.astype(np.float32), "score": sc.astype(np.float32)}


def median_ms(fn, items, repeats: int) -> float:
    for it in items[:2]:  # warm-up (compiled kernels come from the cache)
        fn(it)
    times = []
    for _ in range(repeats):
        for it in items:
            t0 = time.perf_counter()
            fn(it)
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def time_ours(data: dict, threads: list[int], repeats: int) -> dict:
    kps, scs = data["keypoint"], data["score"]
    items = list(zip(kps, scs, strict=True))
    T, V = kps.shape[2], kps.shape[3]
    res: dict = {}
    for variant, (with_joints, limbs) in VARIANTS.items():
        C = V * with_joints + (0 if limbs is None else len(limbs))
        for dt in DTYPES:
            out = np.empty((T, C, 56, 56), dt)  # preallocated and reused, as the renderer does
            for n in threads:
                set_threads(n)

                def call(it, out=out, wj=with_joints, lim=limbs):
                    render_heatmaps(it[0], it[1], out, with_joints=wj, limbs=lim)

                res[(variant, np.dtype(dt).name, n)] = median_ms(call, items, repeats)
        set_threads(1)

        def fresh(it, wj=with_joints, lim=limbs, C=C):  # a new output per call (allocation included)
            render_heatmaps(it[0], it[1], np.empty((T, C, 56, 56), np.float32), with_joints=wj, limbs=lim)

        res[(variant, "float32-fresh", 1)] = median_ms(fresh, items, max(1, repeats // 4))
    return res


def time_memset(shape: tuple[int, ...], repeats: int) -> dict:
    """The bound: writing the output once (numpy fill, one core) on the same reused buffer."""
    res = {}
    for dt in DTYPES:
        a = np.ones(shape, dt)
        ms = median_ms(lambda _, a=a: a.fill(0), [None], repeats * 10)
        res[np.dtype(dt).name] = (ms, a.nbytes)
    return res


def first_call_seconds() -> dict:
    """Compile time (empty numba cache) and cached-load time of one kernel specialisation, fresh processes."""
    code = (
        "import time, numpy as np; t = time.perf_counter(); from etl.heatmaps.kernels import render_heatmaps; "
        "render_heatmaps(np.zeros((1, 2, 3, 2)), np.ones((1, 2, 3)), np.empty((2, 4, 8, 8), np.float32), "
        "with_joints=True, limbs=[[0, 1]]); print(time.perf_counter() - t)"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        runs = [
            subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True)
        ]
        runs.append(
            subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True)
        )
    compile_s, cached_s = (float(r.stdout.strip().splitlines()[-1]) for r in runs)
    return {"compile_s": compile_s, "cached_s": cached_s}


def parity(data: dict) -> dict:
    if "ref_joints" not in data:
        return {}
    errs = {}
    for variant, (with_joints, limbs) in VARIANTS.items():
        ref = data[f"ref_{variant}"]
        ours = render_heatmaps(
            data["keypoint"][0], data["score"][0], np.empty_like(ref), with_joints=with_joints, limbs=limbs
        )
        errs[variant] = float(np.abs(ours.astype(np.float64) - ref).max())
    return errs


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def fmt(x: float, nd: int = 3) -> str:
    return f"{x:.{nd}f}"


def markdown(r: dict, cmd: str) -> str:
    ours, mem, anchor = r["ours"], r["memset"], r["anchor"]
    th = r["threads"]
    T = r["frames"]
    lines = [
        "## Heatmap kernels vs the anchor (GeneratePoseTarget)",
        "",
        f"Command: `{cmd}`  ",
        f"Machine: {r['cpu']}, {os.cpu_count()} cores; numba {r['numba']}, numpy {np.__version__} "
        f"(anchor numpy {r.get('anchor_numpy', '-')}); {r['samples']} samples x {r['repeats']} repeats, "
        f"medians; 1-min load average {r['load'][0]:.2f} before, {r['load'][1]:.2f} after; {r['date']}.  ",
        f"Config: the anchor's own, {T} frames x 17 channels x 56 x 56, 1 person, sigma 0.6 (GeneratePoseTarget "
        "inputs from its NTU60-XSub train geometry). Ours writes into a preallocated, reused output.",
        "",
        "| variant | anchor ms (1 core) | "
        + " | ".join(f"ours {d} {n} thr ms" for d in ("f32", "u8") for n in th)
        + " | speed-up f32 / u8, per core | frames/s per core f32 / u8 |",
        "|---|---|" + "---|" * (2 * len(th)) + "---|---|",
    ]
    for v in VARIANTS:
        a = anchor.get(v)
        cells = [fmt(ours[(v, d, n)]) for d in ("float32", "uint8") for n in th]
        f1, u1 = ours[(v, "float32", 1)], ours[(v, "uint8", 1)]
        speed = f"{ratio(a / f1)} / {ratio(a / u1)}" if a else "-"
        fps = f"{T / f1 * 1e3:,.0f} / {T / u1 * 1e3:,.0f}"
        lines.append(f"| {v} | {fmt(a, 2) if a else '-'} | " + " | ".join(cells) + f" | {speed} | {fps} |")
    lines += [
        "",
        "Bound: writing the output once (`out.fill(0)` of the same reused array, one core) vs our kernel on one "
        "thread; the kernel zeroes each (frame, channel) plane and draws into it while it is in L1.",
        "",
        "| output | bytes/sample | memset ms | memset GB/s | joints: kernel / memset | limbs: kernel / memset |",
        "|---|---|---|---|---|---|",
    ]
    for d in ("float32", "uint8"):
        ms, nbytes = mem[d]
        j, li = ours[("joints", d, 1)], ours[("limbs", d, 1)]
        lines.append(
            f"| {d} | {nbytes / 1e6:.2f} MB | {fmt(ms)} | {nbytes / ms / 1e6:.0f} | {j / ms:.2f}x | {li / ms:.2f}x |"
        )
    fr = [ours[(v, "float32-fresh", 1)] for v in VARIANTS]
    lines += [
        "",
        f"With a new `np.empty` output per call instead (float32, 1 thread; glibc hands the freed block back, so "
        f"few page faults): joints {fmt(fr[0])} ms, "
        f"limbs {fmt(fr[1])} ms.  ",
        f"First call in a fresh process: {r['first_call']['compile_s']:.2f} s with an empty numba cache (compile), "
        f"{r['first_call']['cached_s']:.2f} s from the cache (`cache=True`), per output dtype.  ",
    ]
    if r["parity"]:
        lines.append(
            "Parity on the benchmark's first sample, max abs error vs the anchor: "
            + ", ".join(f"{k} {v:.3g}" for k, v in r["parity"].items())
            + " (the tests check every dump sample)."
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--anchor-runs", type=int, default=3, help="passes of the anchor over the samples")
    ap.add_argument("--repeats", type=int, default=20, help="passes of ours over the samples")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-anchor", action="store_true", help="skip the anchor (synthetic inputs, no ratios)")
    ap.add_argument("--write-doc", default="", help="also write the markdown table to this file")
    ap.add_argument("--json-out", help="also write the raw numbers here")
    a = ap.parse_args(argv)

    import numba

    threads = sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)})
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        if a.no_anchor:
            report, data = {"results": {}}, synthetic_inputs(a.samples, a.seed)
        else:
            report, data = run_anchor(Path(tmp), a.samples, a.anchor_runs, a.seed)
    r = {
        "anchor": {v: x["ms_per_sample_median"] for v, x in report["results"].items()},
        "anchor_numpy": report.get("numpy"),
        "ours": time_ours(data, threads, a.repeats),
        "memset": time_memset((data["keypoint"].shape[2], 17, 56, 56), a.repeats),
        "first_call": first_call_seconds(),
        "parity": parity(data),
        "threads": threads,
        "frames": int(data["keypoint"].shape[2]),
        "samples": a.samples,
        "repeats": a.repeats,
        "cpu": cpu_name(),
        "numba": numba.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "load": (load_before, os.getloadavg()[0]),  # other processes on the host skew the 2-thread rows
    }
    cmd = command_line("bench_kernels.py", argv)
    emit(markdown(r, cmd), a.write_doc)
    if a.json_out:
        flat = dict(r, ours={"/".join(map(str, k)): v for k, v in r["ours"].items()})
        Path(a.json_out).write_text(json.dumps(flat, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
