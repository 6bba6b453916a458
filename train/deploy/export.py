"""`actrec-train export`: a checkpoint -> a model file that runs without actrec (TorchScript or ONNX).

The exported model takes heatmap clips (B, C, T, H, W) float32 in [0, 1] (H = W = the checkpoint's input size,
channels in the order of `render.channels`) and returns logits (B, K); B and T may vary. A graph model
(stgcnpp, ctrgcn) takes keypoint coordinates (N, M, T, V, C) float32 instead, like PYSKL's and MMAction2's
recognizers (M persons, V joints of the layout, C = x, y, score after the checkpoint's `coordinates` pipeline). Class names, the input
description and the render settings (how to draw heatmaps from poses) travel with it: inside the file
(TorchScript: extra file `actrec.json`; ONNX: metadata_props key `actrec`) and beside it as FILE.json.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from etl.common.errors import ActrecError
from etl.pose.layout_def import stored_layout
from train.checkpoint import LoadedModel, load_model
from train.deploy.convert import sha256_file

FORMATS = ("torchscript", "onnx")
METADATA_KEY = "actrec"
FORMAT_VERSION = 1


class LogitsOnly(nn.Module):
    """The model with one input and one output (cnn_lstm_attn can also return attention weights)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def input_description(loaded: LoadedModel) -> dict:
    """The exported input: heatmaps (B, C, T, H, W) in [0, 1], or a graph model's coordinates (N, M, T, V, C)."""
    coordinates = loaded.checkpoint.get("coordinates")
    if coordinates is not None:
        joints = stored_layout(coordinates, loaded.path).n_joints  # built in, or its stored definition
        shape = [
            "batch",
            int(coordinates.get("num_person", 2)),
            "frames",
            joints,
            len(coordinates["channels"]),
        ]
        return {"name": "coordinates", "shape": shape, "layout": "N, M, T, V, C", "dtype": "float32"}
    render = loaded.render
    size = int(render["input_size"])
    return {
        "name": "heatmaps",
        "shape": ["batch", len(render["channels"]), "frames", size, size],
        "layout": "B, C, T, H, W",
        "dtype": "float32",
        "range": [0.0, 1.0],
    }


def metadata(loaded: LoadedModel, checkpoint: Path) -> dict:
    settings = (
        {"render": loaded.render} if loaded.render else {"coordinates": loaded.checkpoint["coordinates"]}
    )
    return {
        "format_version": FORMAT_VERSION,
        "model_name": loaded.model_name,
        "classes": loaded.classes,
        "input": input_description(loaded) | {"frames_trained": loaded.clip_len},
        "output": {"name": "logits", "shape": ["batch", len(loaded.classes)], "softmax": "not applied"},
        **settings,
        "checkpoint": {"path": str(checkpoint), "sha256": sha256_file(checkpoint), "epoch": loaded.epoch},
    }


@dataclass
class ExportReport:
    out: Path
    sidecar: Path
    fmt: str
    max_abs_diff: float  # exported vs PyTorch logits on a random input (a self-check)


def example_input(loaded: LoadedModel, batch: int = 2, frames: int | None = None) -> torch.Tensor:
    """A random input of the exported shape (input_description), `frames` frames (default: as trained)."""
    shape = [batch if d == "batch" else frames or loaded.clip_len if d == "frames" else d for d in
             input_description(loaded)["shape"]]  # fmt: skip
    g = torch.Generator().manual_seed(0)
    return torch.rand(*shape, generator=g)


def export_model(checkpoint: str | Path, out: str | Path, fmt: str) -> ExportReport:
    checkpoint, out = Path(checkpoint), Path(out)
    if fmt not in FORMATS:
        raise ActrecError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    loaded = load_model(checkpoint, "cpu")
    meta = metadata(loaded, checkpoint)
    text = json.dumps(meta, indent=2)
    module = LogitsOnly(loaded.model).eval()
    x = example_input(loaded)
    name = meta["input"]["name"]
    out.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        expected = module(x)
        if fmt == "torchscript":
            _torchscript(module, x, out, text)
            got = run_torchscript(out, x)
        else:
            _onnx(module, x, out, text, name)
            got = run_onnx(out, x)
    sidecar = out.with_name(out.name + ".json")
    sidecar.write_text(text + "\n")
    return ExportReport(out, sidecar, fmt, float((got - expected).abs().max()))


def _torchscript(module: nn.Module, x: torch.Tensor, out: Path, text: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about python values that are constants here
        traced = torch.jit.trace(module, (x,))
        torch.jit.save(traced, str(out), _extra_files={f"{METADATA_KEY}.json": text})  # (deprecation warning)


def _jit_load(path: str | Path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript still loads in torch 2.x
        return torch.jit.load(str(path), map_location="cpu", **kw)


def run_torchscript(path: Path, x: torch.Tensor) -> torch.Tensor:
    model = _jit_load(path)
    with torch.no_grad():
        return model(x)


def read_torchscript_metadata(path: str | Path) -> dict:
    extra = {f"{METADATA_KEY}.json": ""}
    _jit_load(path, _extra_files=extra)
    return json.loads(extra[f"{METADATA_KEY}.json"])


def _need_onnx():
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise ActrecError(
            "--format onnx needs the onnx and onnxruntime packages: pip install 'actrec[export]'"
        ) from None
    return onnx, onnxruntime


def _onnx(module: nn.Module, x: torch.Tensor, out: Path, text: str, name: str = "heatmaps") -> None:
    onnx, _ = _need_onnx()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and LSTM batch-size notes
        torch.onnx.export(
            module,
            (x,),
            str(out),
            dynamo=False,  # the TorchScript-based exporter: no onnxscript needed
            input_names=[name],
            output_names=["logits"],
            dynamic_axes={name: {0: "batch", 2: "frames"}, "logits": {0: "batch"}},
        )
    model = onnx.load(str(out))
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, text
    onnx.save(model, str(out))


def run_onnx(path: Path, x: torch.Tensor) -> torch.Tensor:
    _, ort = _need_onnx()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])


def read_onnx_metadata(path: str | Path) -> dict:
    onnx, _ = _need_onnx()
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    return json.loads(props[METADATA_KEY])
