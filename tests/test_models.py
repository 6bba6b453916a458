"""The heatmap models at `tiny` size (seconds in total); full sizes only for parameter counting. The graph models
(tests/test_gcn.py) are here where every model is asked the same: what fit asks of them."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
import torch
from torch import nn

from etl.common.errors import ActrecError
from train.models import MODELS, PRESETS, build_model, count_parameters, model_from_config
from train.models.resnet import ResNet
from train.models.resnet3d import ResNet3dSlowOnly

ALL_NAMES = list(MODELS)
NAMES = [name for name, (cls, _) in MODELS.items() if cls.consumes == "heatmaps"]  # (B, C, T, H, W) input
GRAPH_NAMES = [name for name, (cls, _) in MODELS.items() if cls.consumes == "coordinates"]  # (N, M, T, V, C)
B, C, T, S, K = 2, 27, 8, 32, 5


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _clip(b: int = B, t: int = T) -> torch.Tensor:
    # Heatmap-like: mostly zeros, values in [0, 1].
    x = torch.rand(b, C, t, S, S)
    return x * (x > 0.9)


def _conv1(model: nn.Module) -> nn.Module:
    return model.backbone.conv1 if hasattr(model, "backbone") else model.encoder.conv1


@pytest.mark.parametrize("name", NAMES)
def test_output_shape_and_each_clip_scored_on_its_own(name):
    model, _ = build_model(name, "tiny", C, K)
    model.eval()
    x = _clip()
    logits = model(x)
    assert logits.shape == (B, K)
    assert torch.isfinite(logits).all()
    # in eval mode a clip's scores do not depend on the other clips of its batch (no batch statistics, no mixing)
    alone = torch.cat([model(x[i : i + 1]) for i in range(B)])
    torch.testing.assert_close(logits, alone, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(logits[0], logits[1])  # and different clips get different scores


def test_attention_weights_sum_to_one_over_frames():
    model, _ = build_model("cnn_lstm_attn", "tiny", C, K)
    model.eval()
    logits, weights = model(_clip(), return_attention=True)
    assert logits.shape == (B, K)
    assert weights.shape == (B, T)
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(B))


def test_attention_queried_by_the_last_state_starts_as_mean_pooling_and_the_head_sees_that_state():
    """Uniform frame weights at the start, and the logits change when only the last state changes (the head
    reads [context; h_T])."""
    model, config = build_model("cnn_lstm_attn", "tiny", C, K)
    assert config.query_last
    model.eval()
    x = _clip()
    _, weights = model(x, return_attention=True)
    torch.testing.assert_close(weights, torch.full((B, T), 1 / T))
    outputs, (h_n, _) = model.lstm(model.encode_frames(x))
    context, _ = model.attention(outputs, h_n[-1])
    torch.testing.assert_close(context, outputs.mean(dim=1))
    torch.testing.assert_close(model.head(torch.cat([context, h_n[-1]], dim=1)), model(x))
    assert not torch.allclose(model.head(torch.cat([context, torch.zeros_like(h_n[-1])], dim=1)), model(x))
    assert model.head[0].in_features == 2 * config.lstm_hidden


def test_the_first_attention_design_and_configs_from_before_a_field_are_refused():
    """query_last=false (the first design) was removed, and an older checkpoint's config (without the field) is
    not translated: one line each, naming what to do."""
    with pytest.raises(ActrecError, match=r"first attention design.*re-train"):
        build_model("cnn_lstm_attn", "tiny", C, K, query_last=False)
    _, config = build_model("cnn_lstm_attn", "tiny", C, K)
    saved = asdict(config)
    del saved["query_last"]  # what a checkpoint saved before the field holds
    with pytest.raises(ActrecError, match=r"lacks query_last: saved by an older actrec; re-train"):
        model_from_config("cnn_lstm_attn", saved)
    assert model_from_config("cnn_lstm_attn", asdict(config)).config == config


@pytest.mark.parametrize(
    ("depth", "n_params"),
    # torchvision.models.resnet{18,50,152}() parameter counts
    [(18, 11_689_512), (50, 25_557_032), (152, 60_192_808)],
)
def test_resnet_matches_torchvision_parameter_count(depth, n_params):
    assert count_parameters(ResNet(depth, in_channels=3, num_classes=1000)) == n_params
    # Heatmap input changes conv1 only: 27 vs 3 input channels of a 64 x 7 x 7 kernel.
    assert count_parameters(ResNet(depth, in_channels=27, num_classes=1000)) == n_params + 24 * 64 * 7 * 7


def test_resnet_module_names_follow_torchvision():
    names = {n for n, _ in ResNet(50).named_parameters()}
    for expected in (
        "conv1.weight",
        "bn1.weight",
        "layer1.0.downsample.0.weight",
        "layer1.0.downsample.1.bias",
        "layer4.2.conv3.weight",
        "layer4.2.bn3.weight",
        "fc.weight",
        "fc.bias",
    ):
        assert expected in names
    encoder = ResNet(18, in_channels=C, num_classes=0, width=8, stem_stride=1, maxpool=False)
    assert encoder(torch.rand(3, C, 48, 48)).shape == (3, encoder.feat_dim) == (3, 64)


def test_c3d_full_size_is_posec3d():
    # MMAction2 PoseC3D SlowOnly-R50 keypoint backbone (17 coco joints): ~2.0M parameters.
    assert count_parameters(ResNet3dSlowOnly(17)) == 1_994_080
    model, cfg = build_model("c3d", "full", 17, 60)  # NTU-60: + I3D head 512 * 60 + 60
    assert count_parameters(model) == 1_994_080 + 30_780
    assert (cfg.base_channels, cfg.stage_blocks, cfg.dropout) == (32, (4, 6, 3), 0.5)
    # Penn Action: 27 joint + limb channels, 15 classes.
    assert count_parameters(build_model("c3d", "full", 27, 15)[0]) == 2_017_455


def test_full_lstm_models_use_resnet152_and_lstm1024():
    model, cfg = build_model("cnn_lstm", "full", 27, 15)
    assert (cfg.resnet_depth, cfg.lstm_hidden, cfg.head_dims) == (152, 1024, (512, 256))
    # encoder (ResNet-152 without fc, conv1 over 27 channels) + LSTM(2048 -> 1024) + head
    encoder = 60_192_808 - (2048 * 1000 + 1000) + 24 * 64 * 7 * 7
    lstm = 4 * 1024 * (2048 + 1024 + 2)
    head = (1024 * 512 + 512) + (512 * 256 + 256) + (256 * 15 + 15)
    assert count_parameters(model) == encoder + lstm + head == 71_470_159


@pytest.mark.parametrize("name", NAMES)
def test_config_round_trip_loads_strictly(name):
    model, cfg = build_model(name, "tiny", C, K, dropout=0.1)
    saved = json.loads(json.dumps(asdict(cfg)))  # as a checkpoint stores it: tuples come back as lists
    rebuilt = model_from_config(name, saved)
    assert rebuilt.config == cfg
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    model.eval()
    rebuilt.eval()
    x = _clip()
    torch.testing.assert_close(rebuilt(x), model(x))


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_the_first_conv(name):
    model, _ = build_model(name, "tiny", C, K)
    loss = nn.functional.cross_entropy(model(_clip()), torch.tensor([0, 1]))
    loss.backward()
    grad = _conv1(model).weight.grad
    assert grad is not None
    assert grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name", ["cnn_lstm", "cnn_lstm_attn"])
def test_frame_chunks_match_one_pass_in_eval(name):
    model, cfg = build_model(name, "tiny", C, K)
    chunked = model_from_config(name, {**asdict(cfg), "frame_chunk": 3})  # 16 frames in chunks of 3
    chunked.load_state_dict(model.state_dict())
    model.eval()
    chunked.eval()
    x = _clip()
    torch.testing.assert_close(chunked(x), model(x))


@pytest.mark.parametrize("name", NAMES)
def test_channels_last_input(name):
    model, _ = build_model(name, "tiny", C, K)
    model.eval()
    x = _clip()
    x_cl = x.contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(model(x_cl), model(x), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_tiny_model_overfits_separable_samples(name):
    # 8 clips of 4 classes; class k lights up a blob in channel k (plus sparse noise everywhere).
    n, classes = 8, 4
    y = torch.arange(n) % classes
    x = torch.rand(n, C, T, S, S) * (torch.rand(n, C, T, S, S) > 0.97)
    for i, k in enumerate(y.tolist()):
        x[i, k, :, 8:16, 8:16] = 1.0
    model, _ = build_model(name, "tiny", C, classes, dropout=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0], losses


def test_unknown_model_preset_or_field():
    with pytest.raises(ActrecError, match="c3d, cnn_lstm, cnn_lstm_attn"):
        build_model("transformer", "tiny", C, K)
    with pytest.raises(ActrecError, match="full, small, tiny"):
        build_model("c3d", "huge", C, K)
    with pytest.raises(ActrecError, match="lstm_hidden"):
        build_model("c3d", "tiny", C, K, lstm_hidden=8)
    with pytest.raises(ActrecError, match="unknown model"):
        model_from_config("nope", {})
    with pytest.raises(ActrecError, match="resnet_depth"):
        build_model("cnn_lstm", "tiny", C, K, resnet_depth=20)
    with pytest.raises(ActrecError, match="one entry per stage"):
        build_model("c3d", "tiny", C, K, stage_blocks=(1, 1))


def test_every_preset_names_every_model():
    for preset in PRESETS.values():
        assert set(preset) == set(MODELS)
    assert NAMES
    assert GRAPH_NAMES
    assert set(NAMES) | set(GRAPH_NAMES) == set(ALL_NAMES)


@pytest.mark.parametrize("name", GRAPH_NAMES)
def test_graph_models_carry_what_fit_asks_of_them(name):
    """The graph models answer fit's questions too: first conv (taking the C coordinates), classifier, backbone,
    and the contiguous (N, M, T, V, C) input fit hands them (no channels-last conversion of 5-D coordinates)."""
    c, v = 3, 17
    model, _ = build_model(name, "tiny", c, K, layout="coco17")
    state = model.state_dict()
    assert model.consumes == "coordinates"
    assert model.first_conv in state
    assert state[model.first_conv].shape[1] == c
    assert model.first_conv.startswith(f"{model.backbone_name}.")
    assert isinstance(getattr(model, model.backbone_name), nn.Module)
    assert model.classifier_keys() <= set(state)
    assert all(state[k].shape[0] == K for k in model.classifier_keys())
    assert model.conv_dims == 0
    assert not model.has_attention
    assert model.memory_format is model.input_memory_format is torch.contiguous_format
    x = torch.randn(B, 2, T, v, c).contiguous(memory_format=model.input_memory_format)
    model.to(memory_format=model.memory_format).eval()
    assert model(x).shape == (B, K)


@pytest.mark.parametrize("name", NAMES)
def test_models_carry_what_fit_asks_of_them(name):
    """fit, --init-from and fine-tuning read these attributes instead of branching on model names."""
    model, _ = build_model(name, "tiny", C, K)
    state = model.state_dict()
    assert model.first_conv in state
    assert state[model.first_conv].shape[1] == C  # the conv that takes the heatmap channels
    assert model.classifier_keys() <= set(state)
    assert all(state[k].shape[0] == K for k in model.classifier_keys())  # the last layer: one row per class
    backbone = getattr(model, model.backbone_name)
    assert isinstance(backbone, nn.Module)
    assert model.first_conv.startswith(f"{model.backbone_name}.")
    assert model.conv_dims == state[model.first_conv].ndim - 2
    assert model.consumes == "heatmaps"
    x = _clip().to(memory_format=model.input_memory_format)  # (B, C, T, S, S)
    model.to(memory_format=model.memory_format)
    model.eval()
    if model.has_attention:
        logits, weights = model(x, return_attention=True)
        assert weights.shape == (B, T)
        assert torch.allclose(weights.sum(1), torch.ones(B))
    else:
        logits = model(x)
    assert logits.shape == (B, K)


def test_no_model_name_branches_outside_models():
    """Adding a fourth model touches train/models/__init__.py (and its recipe) only: no other training module names one."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "train"
    for module in ("fit.py", "deploy/pretrained.py", "optim.py", "deploy/evaluation.py", "deploy/predict.py"):
        text = (root / module).read_text()
        for name in ALL_NAMES:
            assert f'== "{name}"' not in text, f"{module} branches on {name}"
            assert f'!= "{name}"' not in text, f"{module} branches on {name}"
