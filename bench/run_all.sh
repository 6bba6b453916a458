#!/usr/bin/env bash
# Run every benchmark in one go on a quiet machine and assemble docs/benchmarks.md from their tables.
# Creates the MMAction2 anchor venv (bench/anchor_env.sh) on first use. About 8 minutes on 2 cores (torch.compile in bench_gcn_step.py takes 2 of them).
set -euo pipefail
cd "$(dirname "$0")/.."
export NUMBA_CACHE_DIR=${NUMBA_CACHE_DIR:-$PWD/.cache/numba}
PY=.venv/bin/python
tmp=$(mktemp -d)
$PY bench/bench_kernels.py --write-doc "$tmp/kernels.md"
$PY bench/bench_loader.py --write-doc "$tmp/loader.md"  # the default store (lz4, as actrec-etl render)
$PY bench/bench_loader.py --codec zstd --write-doc "$tmp/loader_zstd.md"
$PY bench/bench_render.py --write-doc "$tmp/render.md"
$PY bench/bench_gcn.py --write-doc "$tmp/gcn.md"  # ST-GCN++ training step vs MMAction2's (anchor venv)
$PY bench/bench_gcn_pipeline.py --write-doc "$tmp/gcn_pipeline.md"  # a GCN training sample vs MMAction2's pipeline
$PY bench/bench_models.py --write-doc "$tmp/models.md"  # every model's train/inference clips/s at small, vs c3d
$PY bench/bench_gcn_step.py --write-doc "$tmp/gcn_step.md"  # what eager vs oneDNN off vs torch.compile do to a GCN step
# the CPU epoch profile needs a rendered store (e.g. bench/train_penn.sh's runs/penn/heatmaps.zarr)
PROFILE_STORE=${PROFILE_STORE:-runs/penn/heatmaps.zarr}
touch "$tmp/epoch.md"
if [ -d "$PROFILE_STORE" ]; then $PY bench/profile_epoch.py "$PROFILE_STORE" --write-doc "$tmp/epoch.md"; fi
# pose extraction from the shared video needs the video extra (pip install -e '.[dev,video]')
touch "$tmp/extract.md"
if $PY -c "import av, mediapipe" 2>/dev/null; then $PY bench/bench_extract.py --write-doc "$tmp/extract.md"; fi
{
    cat docs/benchmarks_intro.md
    echo
    cat "$tmp/kernels.md"
    echo
    cat "$tmp/render.md"
    echo
    cat "$tmp/loader.md"
    echo
    echo "The same loader benchmark with the zstd store (\`--codec zstd\`):"
    echo
    awk '/^\|/ {p = 1} p && !/^\|/ {exit} p' "$tmp/loader_zstd.md"  # its first table
    echo
    cat "$tmp/epoch.md"
    echo
    cat "$tmp/extract.md"
    echo
    cat "$tmp/gcn.md"
    echo
    cat "$tmp/gcn_pipeline.md"
    echo
    cat "$tmp/models.md"
    echo
    cat "$tmp/gcn_step.md"
} > docs/benchmarks.md
rm -r "$tmp"
echo "wrote docs/benchmarks.md"
