"""MMAction2 1.2's graph-network training data pipeline, per sample, on clips handed over in an npz. Runs in the
anchor venv (bench/anchor_env.sh), never in actrec's: called as a subprocess by bench/bench_gcn_pipeline.py.

The pipeline is the `train_pipeline` of the stream's stgcnpp_8xb16-{joint,bone,joint-motion,bone-motion}-u100-80e_
ntu60-xsub-keypoint-2d.py config (PreNormalize2D, GenSkeFeat(dataset='coco', feats=[stream]), UniformSampleFrames
(clip_len=100), PoseDecode, FormatGCNInput(num_person=2), PackActionInputs), run by MMAction2's own PoseDataset
(its per-sample get_data_info: a pickle.loads of the dataset's own serialised list, as in training).

    python anchor_gcn_pipeline.py parity CLIPS.npz OUT.npz STREAM...
        per clip and stream, after np.random.set_state(the npz's state for that clip): the packed input
        (2, 100, V, 3) and UniformSampleFrames' frame_inds, written to OUT.npz as {stream}__inputs (N, 2, 100, V, 3)
        and {stream}__frame_inds (N, 100)
    python anchor_gcn_pipeline.py time CLIPS.npz PASSES STREAM...
        per stream, WARM_UP samples then PASSES timed passes: prints JSON with each pass's seconds
        per sample

CLIPS.npz (written by bench_gcn_pipeline.py, PYSKL's annotation convention: a missing joint is (0, 0), score 0):
keypoint (rows, V, 2) and keypoint_score (rows, V) float32, the clips' rows one after another (person-major);
n_persons, n_frames, img_h, img_w, label (N,) int64; bone_pairs (V, 2) int64 (absent: the config's coco pairs
apply); state_keys (N, 624) uint32 + state_pos (N,) int64: a numpy RandomState per clip for `parity`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import anchor_stgcn  # noqa: F401  (its stand-ins for the modules the 1.2.0 wheel lacks)
import mmaction
import numpy as np
import torch
from mmaction.datasets import PoseDataset
from mmaction.utils import register_all_modules
from mmengine.config import Config

CONFIGS = Path(mmaction.__file__).parent / ".mim/configs/skeleton/stgcnpp"
WARM_UP = 20  # samples before the timed passes
CONFIG_NAME = {"j": "joint", "b": "bone", "jm": "joint-motion", "bm": "bone-motion"}


def config_path(stream: str) -> Path:
    return CONFIGS / f"stgcnpp_8xb16-{CONFIG_NAME[stream]}-u100-80e_ntu60-xsub-keypoint-2d.py"


class ClipsDataset(PoseDataset):
    """PoseDataset over an in-memory annotation list instead of a pickle file (everything else is MMAction2's)."""

    def __init__(self, annotations: list[dict], pipeline: list[dict]):
        self._annotations = annotations
        super().__init__(ann_file="", pipeline=pipeline)

    def load_data_list(self) -> list[dict]:
        return self._annotations


def annotations(z) -> list[dict]:
    """The npz's clips as PYSKL annotation dicts: keypoint (M, T, V, 2), keypoint_score (M, T, V), ..."""
    out, row = [], 0
    for i in range(len(z["n_frames"])):
        m, t = int(z["n_persons"][i]), int(z["n_frames"][i])
        h, w = int(z["img_h"][i]), int(z["img_w"][i])
        kp = z["keypoint"][row : row + m * t]  # (M*T, V, 2)
        sc = z["keypoint_score"][row : row + m * t]
        row += m * t
        out.append({
            "frame_dir": f"clip{i:05d}",
            "label": int(z["label"][i]),
            "img_shape": (h, w),
            "original_shape": (h, w),
            "total_frames": t,
            "keypoint": kp.reshape(m, t, *kp.shape[1:]).copy(),
            "keypoint_score": sc.reshape(m, t, sc.shape[1]).copy(),
        })  # fmt: skip
    return out


def build(z, stream: str) -> ClipsDataset:
    pipeline = Config.fromfile(str(config_path(stream))).train_pipeline
    ds = ClipsDataset(annotations(z), pipeline)
    if "bone_pairs" in z.files and stream in ("b", "bm"):
        # JointToBone knows only nturgb+d / openpose / coco pairs (fixed lists, no argument): the layout's own
        # (joint, parent) pairs replace coco's on the instance GenSkeFeat built
        gen = next(t for t in ds.pipeline.transforms if type(t).__name__ == "GenSkeFeat")
        j2b = next(t for t in gen.ops.transforms if type(t).__name__ == "JointToBone")
        j2b.pairs = tuple((int(a), int(b)) for a, b in z["bone_pairs"])
    return ds


def parity(clips: str, out: str, streams: list[str]) -> None:
    z = np.load(clips)
    arrays = {}
    for stream in streams:
        ds = build(z, stream)
        inputs, inds = [], []
        for i in range(len(ds)):
            # UniformSampleFrames draws from numpy's global RandomState: give it the state ours draws from
            np.random.set_state(("MT19937", z["state_keys"][i], int(z["state_pos"][i]), 0, 0.0))  # noqa: NPY002
            results = ds.get_data_info(i)
            for t in ds.pipeline.transforms:  # the dataset's own pipeline, step by step, to keep frame_inds
                if type(t).__name__ == "PackActionInputs":
                    frame_inds = results["frame_inds"]
                results = t(results)
            inputs.append(results["inputs"].numpy()[0])  # (num_clips=1, M, T, V, C) -> (M, T, V, C)
            inds.append(frame_inds)
        arrays[f"{stream}__inputs"] = np.stack(inputs)
        arrays[f"{stream}__frame_inds"] = np.stack(inds)
    np.savez(out, **arrays)


def timing(clips: str, passes: int, streams: list[str]) -> None:
    torch.set_num_threads(1)
    np.random.seed(0)  # noqa: NPY002  (the global RandomState is what MMAction2's transforms draw from)
    z = np.load(clips)
    result = {}
    for stream in streams:
        ds = build(z, stream)
        for i in range(min(len(ds), WARM_UP)):
            ds[i]
        per_pass = []
        for _ in range(passes):
            t0 = time.perf_counter()
            for i in range(len(ds)):
                ds[i]
            per_pass.append((time.perf_counter() - t0) / len(ds))
        result[stream] = per_pass
    versions = {"mmaction2": mmaction.__version__, "numpy": np.__version__, "torch": torch.__version__}
    print(json.dumps({"s_per_sample": result, "versions": versions}))


if __name__ == "__main__":
    register_all_modules()
    if sys.argv[1] == "parity":
        parity(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        timing(sys.argv[2], int(sys.argv[3]), sys.argv[4:])
