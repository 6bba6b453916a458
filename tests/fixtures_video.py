"""Small videos and ONNX pose models made inside the tests (PyAV's encoder, onnx.helper); nothing committed.

The video tests need the optional extra `actrec[video]`: they skip where it is absent (a user's clone without
it) and fail under CI=true, which installs it (.ci/run)."""

from __future__ import annotations

import importlib
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest


def need(module: str):
    """Import `module` of the video extra; skip without it, except in CI where it must be installed."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return importlib.import_module(module)
    return pytest.importorskip(module, reason=f"{module} missing: pip install 'actrec[video]'")


def write_video(
    path: Path,
    n_frames: int = 12,
    *,
    width: int = 96,
    height: int = 64,
    times: list[float] | None = None,
    codec: str = "mpeg4",
) -> Path:
    """A small video whose frame i shows a bright square moving right; `times` (seconds) sets each frame's
    presentation time (variable frame timing), else 25 frames/s."""
    av = need("av")
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for i in range(n_frames):
            rgb = np.zeros((height, width, 3), np.uint8)
            x = (i * 4) % max(width - 16, 1)
            rgb[height // 4 : height // 4 + 16, x : x + 16] = 255
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = round((times[i] if times is not None else i / 25) * 1000)
            frame.time_base = stream.codec_context.time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_onnx_pose_model(
    path: Path,
    keypoints: np.ndarray,
    person_scores: np.ndarray | None,
    *,
    size: tuple[int, int] | None = (32, 48),
) -> Path:
    """An ONNX model of the documented one-stage signature: input (1, 3, H, W) float32 -> keypoints (N, K, 3)
    (constant + 0 x the input's mean, so the graph reads its input) and optional person scores (N,)."""
    onnx = need("onnx")
    from onnx import TensorProto, helper, numpy_helper

    h, w = size if size is not None else ("H", "W")
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["const_kp", "nothing"], ["keypoints"]),
    ]
    inits = [
        numpy_helper.from_array(np.asarray(keypoints, np.float32), "const_kp"),
        numpy_helper.from_array(np.zeros((), np.float32), "zero"),
    ]
    outputs = [helper.make_tensor_value_info("keypoints", TensorProto.FLOAT, list(keypoints.shape))]
    if person_scores is not None:
        nodes.append(helper.make_node("Identity", ["const_scores"], ["person_scores"]))
        inits.append(numpy_helper.from_array(np.asarray(person_scores, np.float32), "const_scores"))
        outputs.append(
            helper.make_tensor_value_info("person_scores", TensorProto.FLOAT, [len(person_scores)])
        )
    graph = helper.make_graph(
        nodes,
        "pose",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, h, w])],
        outputs,
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def first_frames(src: Path, dst: Path, n_frames: int) -> Path:
    """The first `n_frames` of a video re-encoded (MPEG-4 Part 2) at its own size: a short real clip."""
    av = need("av")
    from etl.video.decode import frames, probe

    info = probe(src)
    with av.open(str(dst), "w") as out:
        stream = out.add_stream("mpeg4", rate=round(info.fps) or 25)
        stream.width, stream.height, stream.pix_fmt = info.width, info.height, "yuv420p"
        stream.bit_rate = 8_000_000
        for frame in frames(src):
            if frame.index == n_frames:
                break
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame.rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return dst
