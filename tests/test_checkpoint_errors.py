"""Crafted checkpoints: every way a .pt file can be wrong ends in one line naming the file and the reason, for
evaluate and predict alike, before anything is built from it (no traceback, no code run, no huge allocation)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from etl.common.errors import ActrecError
from train.checkpoint import load_model, render_settings
from train.cli import app
from train.models import build_model

runner = CliRunner()


def valid_checkpoint(model_name: str = "c3d", preset: str = "tiny") -> dict:
    model, config = build_model(model_name, preset, 17, 3)
    from dataclasses import asdict

    return {
        "model_name": model_name,
        "model_config": asdict(config),
        "model": model.state_dict(),
        "classes": ["a", "b", "c"],
        "render": render_settings("coco17", "joints", size=32, sigma=0.6),
        "fit_config": {"clip_len": 8},
    }


class _Gadget:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _crafted(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, a phrase its one-line error must contain)."""
    cases: dict[str, tuple[Path, str]] = {}

    def save(name: str, obj, phrase: str) -> None:
        path = tmp_path / f"{name}.pt"
        torch.save(obj, path)
        cases[name] = (path, phrase)

    def write(name: str, data: bytes, phrase: str) -> None:
        path = tmp_path / f"{name}.pt"
        path.write_bytes(data)
        cases[name] = (path, phrase)

    marker = tmp_path / "pwned"
    write("empty", b"", "the file is empty")
    write("random_bytes", bytes(range(256)) * 3, "not a PyTorch file")
    write("truncated", _truncated_checkpoint(), "cannot load checkpoint")
    save("zip_gadget", {"model": _Gadget(marker)}, "safe loading refuses")
    write("legacy_gadget", pickle.dumps({"model": _Gadget(marker)}), "safe loading refuses")
    save("a_list", [1, 2, 3], "holds a list")
    ck = valid_checkpoint()
    del ck["render"]
    save("missing_render", ck, "lacks render")
    save(
        "raw_mmaction2",
        {"state_dict": {"backbone.conv1.conv.weight": torch.zeros(1)}},
        "actrec-train convert",
    )
    ck = valid_checkpoint()
    ck["model"]["backbone.conv1.weight"] = torch.zeros(8, 17, 1, 3, 3)
    save("wrong_shape", ck, "wrong shape (file vs model: backbone.conv1.weight (8, 17, 1, 3, 3)")
    ck = valid_checkpoint()
    del ck["model"]["head.fc.weight"]
    ck["model"]["extra.weight"] = torch.zeros(1)
    save("missing_weights", ck, "1 missing weights (head.fc.weight); 1 unexpected weights (extra.weight)")
    ck = valid_checkpoint()
    ck["model_config"]["stage_blocks"] = [10**9]
    save("huge_blocks", ck, "model_config.stage_blocks")
    ck = valid_checkpoint()
    ck["model_config"]["base_channels"] = "32; import os"
    save("string_config", ck, "model_config.base_channels")
    ck = valid_checkpoint()
    ck["model_config"]["__class__"] = 1
    save("unknown_field", ck, "unknown C3DConfig field")
    ck = valid_checkpoint()
    ck["model_name"] = "os.system"
    save("unknown_model", ck, "unknown model")
    ck = valid_checkpoint()
    ck["model_name"] = "[/bold]"  # rich markup in a file's text is printed as text
    save("markup_name", ck, "unknown model '[/bold]'")
    ck = valid_checkpoint()
    ck["model_config"]["num_classes"] = 10**12
    save("huge_classes", ck, "model_config.num_classes")
    ck = valid_checkpoint()
    ck["render"]["size"] = 200_000
    save("size_200000", ck, "render size = 200000 is not an integer in 8..1024")
    ck = valid_checkpoint()
    ck["render"]["sigma"] = float("nan")
    save("nan_sigma", ck, "render sigma")
    ck = valid_checkpoint()
    ck["render"]["layout"] = ["coco17"]
    save("list_layout", ck, "unknown layout")
    ck = valid_checkpoint()
    ck["render"]["flip_permutation"] = [0] * 17
    save("bad_flip", ck, "flip_permutation")
    ck = valid_checkpoint()
    ck["classes"] = ["a"]
    save("class_count", ck, "1 class names for a model with num_classes=3")
    ck = valid_checkpoint()
    ck["fit_config"] = {"clip_len": 10**9}
    save("huge_clip_len", ck, "clip_len")
    ck = valid_checkpoint()
    ck["model"]["head.fc.bias"] = "not a tensor"
    save("non_tensor_weight", ck, "map parameter names to tensors")
    ck = valid_checkpoint("cnn_lstm_attn")
    ck["model_config"]["query_last"] = False  # the first attention design: removed, not rebuilt
    save("first_attention_design", ck, "(the first attention design) was removed: re-train the model")
    ck = valid_checkpoint("cnn_lstm_attn")
    del ck["model_config"]["query_last"]  # saved before the field: not translated
    save("config_before_a_field", ck, "model_config lacks query_last: saved by an older actrec; re-train")
    return cases


def _truncated_checkpoint() -> bytes:
    import io

    buf = io.BytesIO()
    torch.save(valid_checkpoint(), buf)
    return buf.getvalue()[: len(buf.getvalue()) // 2]


@pytest.fixture(scope="module")
def crafted(tmp_path_factory) -> tuple[Path, dict[str, tuple[Path, str]]]:
    tmp = tmp_path_factory.mktemp("crafted")
    return tmp, _crafted(tmp)


def test_a_valid_checkpoint_loads(tmp_path):
    path = tmp_path / "ok.pt"
    torch.save(valid_checkpoint(), path)
    loaded = load_model(path)
    assert loaded.classes == ["a", "b", "c"]
    assert loaded.clip_len == 8
    assert loaded.epoch == 0
    assert not loaded.model.training


def test_every_crafted_checkpoint_is_one_clear_line_from_the_library(crafted):
    tmp, cases = crafted
    assert len(cases) == 25
    for name, (path, phrase) in cases.items():
        with pytest.raises(ActrecError) as info:
            load_model(path)
        message = str(info.value)
        assert "\n" not in message, name
        assert str(path) in message, (name, message)
        assert phrase in message, (name, message)
        assert "weights_only=False" not in message
        assert "weights_only` set to `False" not in message
    assert not (tmp / "pwned").exists()  # no gadget ran


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_every_crafted_checkpoint_is_one_line_on_the_command_line(crafted, command, demo_dir, tmp_path):
    _, cases = crafted
    clip = sorted((demo_dir / "clips").glob("*.json"))[0]
    store = tmp_path / "store.zarr"
    store.mkdir()  # evaluate loads the checkpoint before it opens the store
    for name, (path, phrase) in cases.items():
        args = [command, str(path), str(clip)] if command == "predict" else [command, str(path), str(store)]
        result = runner.invoke(app, args)
        assert result.exit_code == 1, (name, result.output)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1, (name, result.output)
        assert lines[0].startswith("error:"), (name, result.output)
        assert phrase.split(" (")[0] in result.output.replace("\n", ""), (name, result.output)
