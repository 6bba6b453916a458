"""The learning check on real data (issue #28): every model trains two epochs with its `small` defaults on Penn
Action and must reach the validation top-1 its measured run reached, less a stated margin.

The demo-data check (tests/test_recipes.py) only says "better than chance" on synthetic clips; this one fails when
the defaults lag on real data, which is how a recipe made for 240 GPU epochs went unnoticed as the `small` default
(c3d 67.4% after 12 epochs against 84.1% with the recipe the README's table used). The defaults are the README's
tuned settings (tests/test_recipes.py::test_the_penn_tables_tuned_options_are_the_small_defaults), so the
measured values below are the tuned run's.

The whole official training split (1258 clips; a third of it for three epochs left c3d and cnn_lstm at chance:
too few steps), validated on a third of the test split (351 clips, every class: those whose frame count is a multiple of 3, a
selection unrelated to the label); 15 classes, chance 6.7%. Rendered as the README's table renders it
(joints+limbs, 48 px) for the heatmap models, read as coordinates for the graph models. Only `--epochs 2` is
passed: the check's budget (the cosine schedule runs over those 2 epochs, the first its warm-up).
"""

from __future__ import annotations

import math
from dataclasses import replace

import pandas as pd
import pytest

from train.fit import FitConfig, fit

EPOCHS = 2
VAL_WHERE = "split == 'test' and n_frames % 3 == 0"
CHANCE = 1 / 15
# val top-1 at epoch 2, seed 0, measured on the 2-core development machine (tests/test_learning_penn.py -s prints
# each run's history); deterministic per seed on a CPU, so the margin only absorbs float-summation order on other
# CPUs and thread counts.
# (epoch 1, the warm-up: c3d 0.094, cnn_lstm and cnn_lstm_attn 0.063 = chance, stgcnpp 0.174, ctrgcn 0.165)
MEASURED = {"c3d": 0.245, "cnn_lstm": 0.202, "cnn_lstm_attn": 0.191, "stgcnpp": 0.390, "ctrgcn": 0.328}
MARGIN = 0.05
GRAPH_MODELS = ("stgcnpp", "ctrgcn")


@pytest.fixture(scope="module")
def penn(shared_dir, tmp_path_factory):
    from etl.commands.ingest import ingest
    from etl.commands.render import render
    from etl.heatmaps.spec import RenderSpec
    from etl.pose.skeleton import get_layout
    from etl.readers import ReadOptions

    root = tmp_path_factory.mktemp("penn")
    labels = shared_dir / "data" / "penn_action" / "labels"
    ingest(
        [labels], out=root / "kp.zarr", fmt="penn-action", options=ReadOptions(layout=get_layout("penn13"))
    )
    render(root / "kp.zarr", root / "hm.zarr", RenderSpec(channels="joints+limbs", size=48), threads=2)
    return root


def _quiet(_line: str) -> None:
    pass


@pytest.mark.shared
@pytest.mark.slow
@pytest.mark.parametrize("model", list(MEASURED))
def test_small_defaults_learn_on_penn_action(penn, tmp_path, model):
    graph = model in GRAPH_MODELS
    store = penn / ("kp.zarr" if graph else "hm.zarr")
    source = "coordinates" if graph else "heatmaps"
    cfg = FitConfig(store=str(store), out=str(tmp_path / model), model=model, preset="small", epochs=EPOCHS)
    fit(replace(cfg, source=source, val_where=VAL_WHERE), log=_quiet)
    history = pd.read_csv(tmp_path / model / "metrics.csv")
    shown = history[["epoch", "train_loss", "val_loss", "val_top1"]]
    print(model, shown.to_dict("list"))
    # learning, not drifting: the validation loss leaves ln K (uniform predictions) and top-1 is 2-6x chance
    assert history.val_loss.iloc[-1] < math.log(1 / CHANCE) - 0.1, shown
    assert history.val_top1.iloc[-1] >= MEASURED[model] - MARGIN, shown
