#!/usr/bin/env bash
# Create the anchor venv (MMAction2 1.2.0 PoseC3D pipeline, CPU) if it is missing; print its path.
# Recipe and pins: ../shared/anchor/README.md (mmcv-lite 2.2.0 fails mmaction2's version check, PoseCompact
# uses np.Inf -> numpy<2, OpenCV >= 4.12 needs numpy 2, --no-deps skips decord and GUI OpenCV).
# Usage: bench/anchor_env.sh  (honours $ANCHOR_VENV, default $HOME/.cache/actrec-anchor-venv)
set -euo pipefail

ANCHOR_VENV="${ANCHOR_VENV:-$HOME/.cache/actrec-anchor-venv}"
PY="${PYTHON:-python3}"
CHECK="from mmaction.datasets.transforms import GeneratePoseTarget"

if [[ -x "$ANCHOR_VENV/bin/python" ]] && "$ANCHOR_VENV/bin/python" -c "$CHECK" 2>/dev/null; then
    echo "$ANCHOR_VENV"
    exit 0
fi

echo "creating the anchor venv at $ANCHOR_VENV (about a minute)" >&2
"$PY" -m venv "$ANCHOR_VENV"
P="$ANCHOR_VENV/bin/pip"
{
    "$P" install --quiet --upgrade pip
    "$P" install --quiet torch==2.13.0
    "$P" install --quiet "numpy<2" "opencv-python-headless<4.12" addict pyyaml yapf rich termcolor matplotlib \
        packaging Pillow scipy einops
    "$P" install --quiet --no-deps mmengine==0.10.7 mmcv-lite==2.1.0 mmaction2==1.2.0
} >&2
"$ANCHOR_VENV/bin/python" -c "$CHECK"
echo "$ANCHOR_VENV"
