#!/usr/bin/env bash
# Train and test all three models on Penn Action (official split) with CPU-sized configs; the numbers and curves
# in docs/results.md come from this script. Usage: bench/train_penn.sh [OUT_DIR] (default runs/penn).
# Runs go to OUT_DIR/SOURCE/MODEL; the stores are shared by both sources. Takes ~1-2 hours on 2 CPU cores.
# Set SOURCE (heatmaps: the cached store | keypoints: rendered on the fly), MODELS, EPOCHS, PRESET, SIZE, CLIP_LEN,
# DEVICE to change the recipe; FIT (e.g. ".venv/bin/actrec-train fit --train-size 48": more fit options) and RUNS
# (default OUT_DIR/SOURCE) to train a variant into its own folder.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/penn}
PENN=${PENN:-../shared/data/penn_action/labels}
EPOCHS=${EPOCHS:-15}
PRESET=${PRESET:-small}
SIZE=${SIZE:-48}
CLIP_LEN=${CLIP_LEN:-24}
DEVICE=${DEVICE:-auto}
SOURCE=${SOURCE:-heatmaps}
MODELS=${MODELS:-c3d cnn_lstm cnn_lstm_attn}
BIN=.venv/bin
FIT=${FIT:-$BIN/actrec-train fit}
RUNS=${RUNS:-$OUT/$SOURCE}
export NUMBA_CACHE_DIR=${NUMBA_CACHE_DIR:-$PWD/.cache/numba}
mkdir -p "$OUT"

[ -d "$OUT/keypoints.zarr" ] || $BIN/actrec-etl ingest "$PENN" --format penn-action --layout penn13 \
    --out "$OUT/keypoints.zarr"
[ -d "$OUT/heatmaps.zarr" ] || $BIN/actrec-etl render "$OUT/keypoints.zarr" --out "$OUT/heatmaps.zarr" \
    --channels joints+limbs --size "$SIZE"
case $SOURCE in
    heatmaps) FIT_STORE=("$OUT/heatmaps.zarr") ;;
    # the render options of the cached store, so that evaluate's fixed views match what training rendered
    keypoints) FIT_STORE=("$OUT/keypoints.zarr" --source keypoints --channels joints+limbs --size "$SIZE") ;;
    *) echo "SOURCE must be heatmaps or keypoints, not '$SOURCE'" >&2; exit 2 ;;
esac
for model in $MODELS; do
    run=$RUNS/$model
    start=$(date +%s)
    $FIT "${FIT_STORE[@]}" --model $model --preset "$PRESET" --out "$run" \
        --epochs "$EPOCHS" --clip-len "$CLIP_LEN" --batch-size 16 --optimizer adamw --lr 1e-3 --weight-decay 0.01 \
        --schedule cosine --warmup-epochs 1 --label-smoothing 0.1 --workers 1 --device "$DEVICE" --resume
    echo "$(( $(date +%s) - start ))" > "$run/fit_wall_s.txt"
    # last.pt, not best.pt: best.pt is picked on the test split (Penn Action has no validation split)
    $BIN/actrec-train evaluate "$run/last.pt" "$OUT/heatmaps.zarr" --where "split == 'test'" \
        --clips 10 --workers 1 --device "$DEVICE" --out "$run/eval.json"
done
