#!/usr/bin/env bash
# GPU check, one script for one CUDA GPU (sized for an H200: 9 fits of at most FIT_TIMEOUT s each): a CUDA fit of
# each model at --preset full (bf16 autocast) for a few hundred steps from each source it reads, reporting train
# samples/s, the share of step time spent waiting for data, and peak GPU memory (all three logged by
# `actrec-train fit`, per epoch in metrics.csv and as medians/maxima in metrics.json).
#
#   PYTHON=.venv/bin/python bench/gpu_check.sh [WORK_DIR]      # needs a CUDA torch and actrec's dependencies
#
# Data: the synthetic demo dataset at a size that gives ~144 steps per epoch (1152 train clips, batch 8), so that
# nothing outside the repository is needed. Runs (2 epochs = ~288 steps each, clip_len 32, 64 px, 6 workers):
#   heatmaps            the cached store, crop/flip by grid_sample on the GPU
#   keypoints (torch)   the loader ships keypoints only; render_torch draws the maps on the GPU
#   keypoints (numba)   c3d only (the most data-hungry model): PoseC3D's pipeline rendered in the workers
#   coordinates         the graph models (stgcnpp, ctrgcn): the keypoint store read as PYSKL's joint stream
#                       (--source coordinates, no heatmaps; "64 px" does not apply to them)
# Each fit is capped by FIT_TIMEOUT seconds (default 80) so the whole script stays within budget; a capped run
# is reported as such. The table goes to stdout and WORK_DIR/gpu_check.md (paste it into docs/benchmarks.md).
# The CPU equivalent of every path here is covered by tests/test_onfly.py with tiny configs.
set -euo pipefail

PY="${PYTHON:-python}"
WORK="${1:-$(mktemp -d /tmp/actrec-gpu-check.XXXXXX)}"
FIT_TIMEOUT="${FIT_TIMEOUT:-80}"
EPOCHS="${EPOCHS:-2}"
BATCH="${BATCH:-8}"
WORKERS="${WORKERS:-6}"
PRESET="${PRESET:-full}"
DEVICE="${DEVICE:-cuda}"  # DEVICE=cpu PRESET=tiny SUBJECTS=4 REPS=2 EPOCHS=1: a smoke run of this script on a CPU
SUBJECTS="${SUBJECTS:-16}"
REPS="${REPS:-12}"
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$PWD/.cache/numba}"
mkdir -p "$WORK"
T0=$(date +%s)

if [[ "$DEVICE" == cuda* ]]; then
    "$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name())"
fi

ETL=("$PY" -m etl.cli)
TRAIN=("$PY" -m train)
if [[ ! -d "$WORK/hm.zarr" ]]; then
    "${ETL[@]}" demo-data "$WORK/demo" --subjects "$SUBJECTS" --reps "$REPS" --seed 0
    "${ETL[@]}" ingest "$WORK/demo/clips" --out "$WORK/kp.zarr" --format coco-json --layout coco17 \
        --labels "$WORK/demo/clips.csv"
    "${ETL[@]}" render "$WORK/kp.zarr" --out "$WORK/hm.zarr" --size 64 --threads "$(nproc)"
fi
echo "data ready after $(( $(date +%s) - T0 )) s"

run() {  # run NAME STORE ARGS...: one fit, capped
    local name=$1 store=$2
    shift 2
    local out="$WORK/runs/$name"
    rm -rf "$out"
    local t=$(date +%s)
    if timeout "$FIT_TIMEOUT" "${TRAIN[@]}" fit "$store" --out "$out" --preset "$PRESET" --epochs "$EPOCHS" \
        --batch-size "$BATCH" --clip-len 32 --lr 1e-4 --workers "$WORKERS" --device "$DEVICE" "$@" \
        >"$WORK/$name.log" 2>&1; then
        echo "$name: done in $(( $(date +%s) - t )) s"
    else
        echo "$name: stopped (timeout ${FIT_TIMEOUT}s or error; see $WORK/$name.log)"
        tail -3 "$WORK/$name.log" || true
    fi
}

for model in c3d cnn_lstm cnn_lstm_attn; do
    run "$model-heatmaps" "$WORK/hm.zarr" --model "$model" --source heatmaps
    run "$model-keypoints-torch" "$WORK/kp.zarr" --model "$model" --source keypoints --renderer torch
done
run "c3d-keypoints-numba" "$WORK/kp.zarr" --model c3d --source keypoints --renderer numba
for model in stgcnpp ctrgcn; do
    run "$model-coordinates" "$WORK/kp.zarr" --model "$model" --source coordinates
done

"$PY" - "$WORK" "$BATCH" "$EPOCHS" "$WORKERS" "$PRESET" <<'EOF' | tee "$WORK/gpu_check.md"
import math
import sys
from pathlib import Path

import pandas as pd
import torch

work, batch, epochs, workers, preset = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:6]
device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
n_train = int((pd.read_parquet(work / "kp.zarr" / "clips.parquet").split == "train").sum())
print(
    f"GPU check on {device}: `bench/gpu_check.sh`, --preset {preset}, bf16 autocast on CUDA, clip_len 32, "
    f"64 px (heatmap models), {n_train} train clips, batch {batch} ({math.ceil(n_train / batch)} steps/epoch), "
    f"{workers} workers. "
    "Figures of the last epoch (epoch 1 includes cudnn autotuning and worker start-up).\n"
)
print("| run | epochs | train samples/s | data-wait share | peak GPU memory GiB | val top1 |")
print("|---|---|---|---|---|---|")
for run in sorted((work / "runs").iterdir()):
    csv = run / "metrics.csv"
    if not csv.exists():
        print(f"| {run.name} | 0 | did not finish an epoch | | | |")
        continue
    h = pd.read_csv(csv)
    t = pd.read_csv(run / "timing.csv")  # wall-clock figures live beside the metrics, not in them
    last, last_t = h.iloc[-1], t.iloc[-1]
    print(
        f"| {run.name} | {len(h)}/{epochs} | {last_t.train_clips_per_s:.0f} | {last_t.data_wait_share:.0%} "
        f"| {t.peak_gpu_mem_gb.max():.1f} | {last.val_top1:.3f} |"
    )
EOF
echo "total $(( $(date +%s) - T0 )) s; table in $WORK/gpu_check.md"
