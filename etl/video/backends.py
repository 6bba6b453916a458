"""Pose backends behind one small interface: a frame in, the persons' joints out, in the backend's own layout.

* `mediapipe` (default): BlazePose full, whose weights ship inside the `mediapipe==0.10.21` wheel, so it runs
  offline on a CPU. One person per frame, 33 landmarks (layout `mediapipe33`), `visibility` as the score.
* `onnx`: a pose model the user supplies by path, one-stage (e.g. RTMO exported by MMPose/MMDeploy). Signature:
  - input: one tensor (1, 3, H, W) float32, RGB, values 0-255 (put any mean/std normalisation inside the graph);
    a fixed H, W in the graph is honoured (the frame is resized to it), a dynamic one gets the frame as is;
  - output 0: keypoints (N, K, 3) or (1, N, K, 3): x, y in input pixels and a score per joint; K = the joints
    of `--layout` in its order (coco17 for COCO-trained models);
  - output 1 (optional): person scores (N,) or (1, N); persons below `min_person_score` are dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from etl.common.errors import ActrecError
from etl.pose.skeleton import MEDIAPIPE33, Layout


class PoseBackend(Protocol):
    name: str
    layout: Layout  # the joints of `__call__`'s output, in order

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """rgb (H, W, 3) uint8 -> keypoints (N, V, 2) float32 pixels (x right, y down), scores (N, V) float32
        in [0, 1]; N = 0 when no person is found."""
        ...

    def close(self) -> None: ...


class MediaPipeBackend:
    name = "mediapipe"
    layout = MEDIAPIPE33

    def __init__(self) -> None:
        try:
            from mediapipe.python.solutions import pose as mp_pose
        except ImportError as exc:
            raise ActrecError(
                f"the mediapipe backend needs the video extra: pip install 'actrec[video]' ({exc})"
            ) from None
        # model_complexity=1 is the one model whose weights are inside the wheel (0 and 2 download theirs);
        # static_image_mode=False tracks the person between frames, as for a video
        self._pose = mp_pose.Pose(static_image_mode=False, model_complexity=1, enable_segmentation=False)

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        height, width = rgb.shape[:2]
        result = self._pose.process(rgb)
        if result.pose_landmarks is None:
            return np.zeros((0, 33, 2), np.float32), np.zeros((0, 33), np.float32)
        marks = result.pose_landmarks.landmark  # 33, x and y normalised by the frame size
        xy = np.array([[m.x * width, m.y * height] for m in marks], np.float32)[None]  # (1, 33, 2)
        score = np.clip(np.array([m.visibility for m in marks], np.float32), 0.0, 1.0)[None]  # (1, 33)
        return xy, score

    def close(self) -> None:
        self._pose.close()


class OnnxBackend:
    name = "onnx"

    def __init__(self, model: Path, layout: Layout, min_person_score: float) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ActrecError(
                f"the onnx backend needs onnxruntime: pip install 'actrec[export]' ({exc})"
            ) from None
        try:
            self._session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
            raise ActrecError(
                f"{model}: not a loadable ONNX model ({' '.join(str(exc).split())[:300]})"
            ) from None
        self.layout = layout
        self._min_score = min_person_score
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        shape = inputs[0].shape
        if len(inputs) != 1 or len(shape) != 4 or shape[1] not in (3, "3"):
            raise ActrecError(
                f"{model}: expected one input (1, 3, H, W), found "
                f"{', '.join(f'{i.name} {i.shape}' for i in inputs)} (see the onnx backend's signature in docs)"
            )
        self._input = inputs[0].name
        self._size = (shape[2], shape[3]) if all(isinstance(s, int) for s in shape[2:]) else None  # (H, W)
        self._outputs = [o.name for o in outputs[:2]]
        self._model = model

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        height, width = rgb.shape[:2]
        image = rgb if self._size is None else _resize_nearest(rgb, *self._size)
        tensor = np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32)  # (1, 3, H', W')
        results = self._session.run(self._outputs, {self._input: tensor})
        kp = np.asarray(results[0], np.float32)
        kp = kp[0] if kp.ndim == 4 else kp  # (N, K, 3)
        v = self.layout.n_joints
        if kp.ndim != 3 or kp.shape[1:] != (v, 3):
            raise ActrecError(
                f"{self._model}: output 0 must be keypoints (N, {v}, 3) for layout {self.layout.name}, "
                f"found {tuple(np.shape(results[0]))}"
            )
        if len(results) > 1:
            person = np.asarray(results[1], np.float32).reshape(-1)  # (N,)
            if person.shape[0] != kp.shape[0]:
                raise ActrecError(
                    f"{self._model}: output 1 (person scores) has {person.shape[0]} entries for {kp.shape[0]} persons"
                )
            kp = kp[person >= self._min_score]
        scale_x = width / image.shape[1]
        scale_y = height / image.shape[0]
        xy = kp[..., :2] * np.array([scale_x, scale_y], np.float32)  # back to frame pixels
        return np.ascontiguousarray(xy), np.clip(kp[..., 2], 0.0, 1.0)

    def close(self) -> None:
        pass


def _resize_nearest(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W, 3) -> (height, width, 3) by nearest pixel (pixel centres map onto pixel centres)."""
    rows = ((np.arange(height) + 0.5) * rgb.shape[0] / height).astype(np.intp)
    cols = ((np.arange(width) + 0.5) * rgb.shape[1] / width).astype(np.intp)
    return rgb[rows[:, None], cols[None, :]]


def make_backend(name: str, *, model: Path | None, layout: Layout, min_person_score: float) -> PoseBackend:
    """The backend `name`; `layout` is what the onnx model outputs (mediapipe has its own, mediapipe33)."""
    if name == "mediapipe":
        if model is not None:
            raise ActrecError(
                f"--model {model} is for --backend onnx; mediapipe uses the weights in its wheel"
            )
        return MediaPipeBackend()
    if name == "onnx":
        if model is None:
            raise ActrecError("the onnx backend needs --model PATH (an ONNX pose model, see docs/formats.md)")
        if not model.is_file():
            raise ActrecError(f"{model}: no such ONNX model file")
        return OnnxBackend(model, layout, min_person_score)
    raise ActrecError(f"unknown backend {name!r}: choose mediapipe or onnx")
