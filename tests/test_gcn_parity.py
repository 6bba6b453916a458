"""Parity with MMAction2 1.2: its ST-GCN++ (built from stgcnpp_8xb16-joint-u100-80e_ntu60-xsub-keypoint-2d.py in the
anchor venv of ../shared/anchor, randomised weights) converted by train/deploy/convert_gcn.py gives the same logits."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import torch
from fixtures_bench import ROOT, bench_module

from train.deploy.convert_gcn import read_state, stgcnpp_from_state


@pytest.mark.shared
@pytest.mark.slow
def test_converted_mmaction2_stgcnpp_gives_its_logits(tmp_path):
    python = bench_module("bench_kernels").anchor_python()  # creates the anchor venv when missing
    dump = tmp_path / "mmaction2_stgcnpp.npz"
    subprocess.run(
        [str(python), str(ROOT / "bench" / "anchor_stgcn.py"), "dump", str(dump), "0"],
        check=True,
        capture_output=True,
        timeout=600,
    )
    state = read_state(dump)
    x, expected = state.pop("input__"), state.pop("logits__")
    model, config = stgcnpp_from_state(state, "coco17")
    assert (config.base_channels, config.num_stages, config.num_classes) == (64, 10, 60)
    assert (config.inflate_stages, config.down_stages, config.data_bn_type) == ((5, 8), (5, 8), "VC")
    assert np.abs(expected.numpy()).max() > 0.1  # randomised weights give non-trivial logits
    model.eval()
    with torch.no_grad():
        got = model(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
