"""ST-GCN++ and CTR-GCN (train/models/gcn.py) and the ST-GCN++ checkpoint converter (train/deploy/convert_gcn.py), on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from etl.common.errors import ActrecError
from train.deploy.convert_gcn import config_from_state, read_state, stgcnpp_from_state
from train.models import build_model
from train.models.gcn import CTRGCN, GCN_PRESETS, STGCNPP, STGCNPPConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _clips(n=2, m=2, t=16, v=17, c=3, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(n, m, t, v, c)).astype(np.float32))


@pytest.mark.parametrize("name", ["stgcnpp", "ctrgcn"])
@pytest.mark.parametrize(("layout", "joints"), [("coco17", 17), ("penn13", 13), ("ntu25", 25)])
def test_tiny_models_map_clips_to_logits_and_learn(name, layout, joints):
    torch.manual_seed(0)
    model, _ = build_model(name, "tiny", in_channels=3, num_classes=5, layout=layout)
    assert model.consumes == "coordinates"
    x, y = _clips(v=joints), torch.tensor([1, 3])
    logits = model(x)
    assert logits.shape == (2, 5)
    loss = torch.nn.functional.cross_entropy(logits, y)
    loss.backward()
    adjacency = [p for n, p in model.named_parameters() if n.endswith(".A")]
    assert adjacency  # the graph is learnt ('init' adaptive) ...
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in adjacency)  # ... and gets gradients
    assert set(model.classifier_keys()) <= set(model.state_dict())


def test_stgcnpp_full_is_the_published_model():
    model, _ = build_model("stgcnpp", "full", in_channels=3, num_classes=60, layout="coco17")
    # MMAction2's model zoo: 1.39M parameters for ST-GCN++ 2D on NTU60 (17 joints, 60 classes)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(1.39e6, rel=0.005)
    widths = [block.gcn.bn.num_features for block in model.backbone.gcn]
    assert widths == [64, 64, 64, 64, 128, 128, 128, 256, 256, 256]
    model.eval()
    with torch.no_grad():
        feats = model.backbone(_clips(n=1, t=100))
    assert feats.shape == (2, 256, 25, 17)  # persons folded into the batch, 100 frames / 2 / 2


def test_ctrgcn_full_widths_and_strides():
    model, _ = build_model("ctrgcn", "full", in_channels=3, num_classes=60, layout="coco17")
    assert [block.gcn1.bn.num_features for block in model.backbone.net] == [64] * 4 + [128] * 3 + [256] * 3
    assert model.backbone.data_bn.num_features == 2 * 17 * 3  # per person, joint and channel (PYSKL 'MVC')
    model.eval()
    with torch.no_grad():
        assert model.backbone(_clips(n=1, t=40)).shape == (2, 256, 10, 17)


def test_presets_and_config_refusals():
    assert set(GCN_PRESETS) == {"full", "small", "tiny"}
    small, _ = build_model("stgcnpp", "small", 3, 10)
    full, _ = build_model("stgcnpp", "full", 3, 10)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in full.parameters()) / 3
    with pytest.raises(ActrecError, match="unknown layout 'nope'"):
        STGCNPPConfig(in_channels=3, num_classes=2, layout="nope")
    with pytest.raises(ActrecError, match="inflate/down stages"):
        STGCNPPConfig(in_channels=3, num_classes=2, num_stages=4)
    with pytest.raises(ActrecError, match="data_bn_type"):
        STGCNPPConfig(in_channels=3, num_classes=2, data_bn_type="X")


# -------------------------------------------------------------------------------------------------- convert


def _saved(tmp_path, model, suffix):
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    path = tmp_path / f"ckpt{suffix}"
    if suffix == ".npz":
        np.savez(path, **{k: v.numpy() for k, v in state.items()})
    else:  # MMAction2 saves {'meta': ..., 'state_dict': ...}
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    return path


@pytest.mark.parametrize("suffix", [".npz", ".pth"])
def test_convert_round_trip_keeps_logits(tmp_path, suffix):
    torch.manual_seed(1)
    model, config = build_model("stgcnpp", "tiny", 3, 7, layout="penn13", data_bn_type="MVC")
    with torch.no_grad():  # non-trivial BN statistics
        for name, t in model.state_dict().items():
            if name.endswith(("running_mean", "running_var")):
                t.copy_(torch.rand_like(t) + 0.5)
    model.eval()
    converted, got = stgcnpp_from_state(read_state(_saved(tmp_path, model, suffix)), "penn13")
    assert got == config
    converted.eval()
    x = _clips(v=13)
    with torch.no_grad():
        torch.testing.assert_close(converted(x), model(x), rtol=0, atol=0)


def test_convert_refusals(tmp_path):
    model, _ = build_model("stgcnpp", "tiny", 3, 4, layout="coco17")
    state = read_state(_saved(tmp_path, model, ".npz"))
    with pytest.raises(ActrecError, match="17 joints, layout 'penn13' has 13"):
        config_from_state(state, "penn13")
    ctr, _ = build_model("ctrgcn", "tiny", 3, 4)
    with pytest.raises(ActrecError, match="not an MMAction2/PYSKL ST-GCN\\+\\+ checkpoint"):
        config_from_state(ctr.state_dict(), "coco17")
    bad = tmp_path / "pickled.pth"
    torch.save({"state_dict": {"x": object()}}, bad)  # weights_only=True refuses arbitrary objects
    with pytest.raises(ActrecError, match="not a weights-only torch checkpoint"):
        read_state(bad)
    with pytest.raises(ActrecError, match="no such checkpoint"):
        read_state(tmp_path / "missing.pth")


def test_models_are_the_declared_classes():
    assert isinstance(build_model("stgcnpp", "tiny", 3, 2)[0], STGCNPP)
    assert isinstance(build_model("ctrgcn", "tiny", 3, 2)[0], CTRGCN)
