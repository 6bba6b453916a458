#!/usr/bin/env bash
# Train and test every model on Penn Action (official split) with `fit`'s defaults (`--preset small`: the CPU
# recipe of train/recipes.py); the numbers and curves in docs/results.md come from this script.
# Usage: bench/train_penn.sh [OUT_DIR] (default runs/penn). Resumable; ~3 hours on 2 CPU cores for everything.
#   MODELS   heatmap models (default "c3d cnn_lstm cnn_lstm_attn") -> OUT_DIR/SOURCE/MODEL
#   GCNS     graph networks (default "stgcnpp ctrgcn"), each on every stream of STREAMS (default "j b jm bm")
#            -> OUT_DIR/coordinates/MODEL_STREAM, then their 2:2:1:1 fusion -> OUT_DIR/coordinates/MODEL_fused
#            and, for each heatmap model of RUNS tested, the two families fused 1:1 -> OUT_DIR/fused/MODEL+HEATMAP
#   SOURCE   heatmaps (the cached store) | keypoints (rendered on the fly) for the heatmap models
#   PRESET, DEVICE; EPOCHS, CLIP_LEN only to override the preset's budget (the table passes neither)
#   FIT (e.g. ".venv/bin/actrec-train fit --train-size 48": more fit options) and RUNS (default OUT_DIR/SOURCE)
#   train a variant into its own folder. Set MODELS="" or GCNS="" to skip a family.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/penn}
PENN=${PENN:-../shared/data/penn_action/labels}
PRESET=${PRESET:-small}
SIZE=${SIZE:-48}
DEVICE=${DEVICE:-auto}
SOURCE=${SOURCE:-heatmaps}
MODELS=${MODELS-c3d cnn_lstm cnn_lstm_attn}
GCNS=${GCNS-stgcnpp ctrgcn}
STREAMS=${STREAMS:-j b jm bm}
BIN=.venv/bin
FIT=${FIT:-$BIN/actrec-train fit}
RUNS=${RUNS:-$OUT/$SOURCE}
BUDGET=()  # the preset's epochs and frames unless asked otherwise
if [ -n "${EPOCHS:-}" ]; then BUDGET+=(--epochs "$EPOCHS"); fi
if [ -n "${CLIP_LEN:-}" ]; then BUDGET+=(--clip-len "$CLIP_LEN"); fi
export NUMBA_CACHE_DIR=${NUMBA_CACHE_DIR:-$PWD/.cache/numba}
mkdir -p "$OUT"

[ -d "$OUT/keypoints.zarr" ] || $BIN/actrec-etl ingest "$PENN" --format penn-action --layout penn13 \
    --out "$OUT/keypoints.zarr"

# fit_and_test RUN "EVALUATE STORE [options]" FIT STORE [options...]: `fit` (1 loader worker: the other core
# trains), its wall time, then `evaluate` of last.pt (not best.pt: best.pt is picked on the test split, Penn
# Action has no validation split) with 10 clips per video
fit_and_test() {
    local run=$1 eval_store=$2
    shift 2
    local start before=0
    # a resumed run's wall time is the sum of its invocations that returned (a killed one's time is lost; a
    # finished run's no-op resume adds seconds); a run without last.pt starts at 0
    if [ -f "$run/last.pt" ] && [ -f "$run/fit_wall_s.txt" ]; then before=$(cat "$run/fit_wall_s.txt"); fi
    start=$(date +%s)
    $FIT "$@" --preset "$PRESET" --out "$run" "${BUDGET[@]}" --workers 1 --device "$DEVICE" --resume
    echo "$(( before + $(date +%s) - start ))" > "$run/fit_wall_s.txt"
    # shellcheck disable=SC2086  # eval_store is a store and its options
    $BIN/actrec-train evaluate "$run/last.pt" $eval_store --where "split == 'test'" \
        --clips 10 --workers 1 --device "$DEVICE" --out "$run/eval.json"
}

if [ -n "$MODELS" ]; then
    [ -d "$OUT/heatmaps.zarr" ] || $BIN/actrec-etl render "$OUT/keypoints.zarr" --out "$OUT/heatmaps.zarr" \
        --channels joints+limbs --size "$SIZE"
    case $SOURCE in
        heatmaps) FIT_STORE=("$OUT/heatmaps.zarr") ;;
        # the render options of the cached store, so that evaluate's fixed views match what training rendered
        keypoints) FIT_STORE=("$OUT/keypoints.zarr" --source keypoints --channels joints+limbs --size "$SIZE") ;;
        *) echo "SOURCE must be heatmaps or keypoints, not '$SOURCE'" >&2; exit 2 ;;
    esac
    for model in $MODELS; do
        # evaluate reads the cached store either way (its fixed views equal what --source keypoints renders)
        fit_and_test "$RUNS/$model" "$OUT/heatmaps.zarr" "${FIT_STORE[@]}" --model "$model"
    done
fi

for model in $GCNS; do
    evals=()
    for stream in $STREAMS; do
        fit_and_test "$OUT/coordinates/${model}_$stream" "$OUT/keypoints.zarr --source coordinates" \
            "$OUT/keypoints.zarr" --source coordinates --model "$model" --stream "$stream"
        evals+=("$OUT/coordinates/${model}_$stream/eval.json")
    done
    if [ "$STREAMS" = "j b jm bm" ]; then  # PYSKL's four-stream weights
        $BIN/actrec-train fuse "${evals[@]}" --weights 2,2,1,1 --out "$OUT/coordinates/${model}_fused/eval.json"
        # across the families: the four-stream fusion and each heatmap model tested in RUNS, 1:1
        for hm in c3d cnn_lstm cnn_lstm_attn; do
            [ -f "$RUNS/$hm/eval.json" ] || continue
            $BIN/actrec-train fuse "$OUT/coordinates/${model}_fused/eval.json" "$RUNS/$hm/eval.json" \
                --out "$OUT/fused/$model+$hm/eval.json"
        done
    fi
done
