#!/usr/bin/env python
"""`actrec-train fit` with model config fields other than the preset's: experiments on a model's design.

    .venv/bin/python bench/fit_variant.py cnn_lstm_attn.query_last=false -- STORE --model cnn_lstm_attn ...

Each MODEL.FIELD=VALUE (VALUE as JSON: true, 3, [1, 2]) overrides that field in every preset of MODEL; the
checkpoint records the model config as usual, so `actrec-train evaluate` rebuilds the variant. bench/train_penn.sh
runs it with FIT="... bench/fit_variant.py SETTINGS --"; docs/results.md reports what was tried.
"""

from __future__ import annotations

import json
import sys
from dataclasses import fields
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from train.cli import app  # noqa: E402
from train.models import MODELS, PRESETS  # noqa: E402


def main(argv: list[str]) -> None:
    if "--" not in argv:
        sys.exit(f"usage: {Path(__file__).name} MODEL.FIELD=VALUE ... -- STORE [fit options]")
    split = argv.index("--")
    for setting in argv[:split]:
        key, _, value = setting.partition("=")
        model, _, field = key.partition(".")
        if model not in MODELS or field not in {f.name for f in fields(MODELS[model][1])}:
            sys.exit(f"{setting!r}: not MODEL.FIELD=VALUE with a field of {', '.join(MODELS)}'s configs")
        for preset in PRESETS.values():
            preset[model] = {**preset[model], field: json.loads(value)}
    app(["fit", *argv[split + 1 :]])


if __name__ == "__main__":
    main(sys.argv[1:])
