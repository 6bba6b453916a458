"""`--source keypoints`: a keypoint store as a training source, PoseC3D's train pipeline on coordinates, then
rendered, as MMAction2 trains.

Train items: UniformSampleFrames -> PoseCompact -> Resize -> RandomResizedCrop (redrawn) -> Resize -> Flip
(train/sources/keypoint_augment.py), all from one RandomState per (seed, epoch, clip), never from the worker count or order;
then either rendered here by the numba kernels in the `--dtype` of the render settings ("numba": the worker
ships (1, T, C, S, S) like HeatmapClips), or shipped as coordinates for the device ("torch": (M, T, V, 2) +
scores, ~10 KB a sample, rendered on the device by train/sources/render_torch.py: KeypointInput).
Eval items: the fixed views of `actrec-etl render` (box over the whole clip, canvas, kernels in --dtype), so
validation and `evaluate --source keypoints` read the same values as the heatmap store rendered with the same
settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from etl.common.errors import ActrecError
from etl.heatmaps.compact import compact_box, to_canvas
from etl.heatmaps.spec import RenderSpec
from etl.pose.skeleton import Layout
from etl.stores.heatmap_store import render_attrs
from etl.stores.keypoint_store import REMAKE, KeypointStore, clip_checksum
from etl.stores.storeio import SEAL_KEY, check_unchanged, store_stamp
from train.seeding import numpy_rng
from train.sources.keypoint_augment import random_train_view
from train.sources.loading import data_identity
from train.sources.render_torch import quantize_like, render_torch
from train.sources.sampling import sample_test, sample_train
from train.sources.views import GivesHeatmaps, resize, to_model_input

RENDERERS = ("numba", "torch")  # where train views are rendered: loader workers | the device


class KeypointSource(GivesHeatmaps):
    """`--source keypoints` (a TrainingSource): a keypoint store seen as the heatmap store `actrec-etl render`
    would make of it with `spec`: the same clip table and the render attrs (etl.stores.heatmap_store.render_attrs: the
    spec, channels, ..., fingerprint).

    The coordinates are read into memory once (Penn Action: ~40 MB); forked loader workers share them."""

    name = "keypoints"

    def __init__(self, path: str | Path, spec: RenderSpec):
        spec.check()
        self.path = Path(path)
        self.spec = spec
        self._stamp = store_stamp(self.path)
        self.kp = KeypointStore.open(path)
        self.table = self.kp.table
        self.layout: Layout = self.kp.layout
        self.channels = self.layout.channel_names(spec.channels)
        self.flip_permutation = self.layout.channel_flip(spec.channels)
        self.classes = self.kp.classes
        self.attrs = {
            "kind": "actrec.keypoints (rendered on the fly)",
            **render_attrs(spec, self.layout, self.kp),
            SEAL_KEY: self.kp.attrs.get(SEAL_KEY),  # the clip table's sha256: part of a run's data identity
        }
        self.coords = np.asarray(self.kp.group["coords"][:])  # (R, V, 2) float32
        self.scores = np.asarray(self.kp.group["scores"][:])  # (R, V) float32
        self.row_offsets = self.kp.row_offsets
        self.n_persons = self.table["n_persons"].to_numpy(np.int64)
        self.n_frames = self.table["n_frames"].to_numpy(np.int64)
        self.img_hw = self.table[["img_h", "img_w"]].to_numpy(np.int64)
        self._verify()

    @classmethod
    def open(cls, path: str | Path, spec: RenderSpec | None = None, coordinates=None) -> KeypointSource:
        """The store at `path`, rendered with `spec` (default: `actrec-etl render`'s)."""
        return cls(path, spec or RenderSpec())

    def identity(self) -> dict:
        return data_identity(self.attrs)

    def describe(self, renderer: str) -> str:
        return f" ({renderer} renderer)"

    def dataset(
        self,
        rows: pd.DataFrame,
        *,
        clip_len: int,
        train: bool,
        num_clips: int = 1,
        seed: int = 0,
        input_size: int = 0,
        augment: bool = True,
        renderer: str = "numba",
    ) -> KeypointClips:
        index, labels = rows.index.to_numpy(), rows["label"].to_numpy()
        return KeypointClips(
            self,
            index,
            labels,
            clip_len=clip_len,
            train=train,
            num_clips=num_clips,
            seed=seed,
            input_size=input_size,
            augment=augment,
            renderer=renderer,
        )

    def train_input(
        self, *, device: torch.device, scale: float, input_size: int, augment: bool, renderer: str
    ) -> KeypointInput:
        spec = self.spec
        return KeypointInput(device, scale, input_size, augment, renderer, spec, spec.limbs(self.layout))

    def check_unchanged(self) -> None:
        """Raise if the store at self.path is no longer the one read (as HeatmapStore.check_unchanged): a
        checkpoint must not name data that is not what it was trained on."""
        check_unchanged(self.path, self._stamp, "an ingest --overwrite")

    def _verify(self) -> None:
        """Every clip against its checksum, once (the in-memory copy is what training reads)."""
        for row in range(len(self.table)):
            a, b = int(self.row_offsets[row]), int(self.row_offsets[row + 1])
            if clip_checksum(self.coords[a:b], self.scores[a:b]) != int(self.kp.checksums[row]):
                raise ActrecError(
                    f"{self.path}: clip {self.table.clip_id.iat[row]} (rows {a}-{b} of coords/scores) fails its "
                    f"checksum: the store is damaged (run `actrec-etl verify`). {REMAKE}."
                )

    def __len__(self) -> int:
        return len(self.table)

    def clip(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """(keypoints (M, T, V, 2), scores (M, T, V)) of clip `row` (views of the in-memory arrays)."""
        m, t = int(self.n_persons[row]), int(self.n_frames[row])
        a, b = int(self.row_offsets[row]), int(self.row_offsets[row + 1])
        v = self.coords.shape[1]
        return self.coords[a:b].reshape(m, t, v, 2), self.scores[a:b].reshape(m, t, v)


class KeypointClips(Dataset):
    """Items are (store row index, epoch) pairs from EpochSampler, as HeatmapClips.

    train=True: one random view: renderer "numba" -> ((1, T, C, S, S) of spec.dtype, label); "torch" ->
    ((keypoints (M, T, V, 2), scores (M, T, V)) in view pixels, label), batched by `collate`.
    train=False: `num_clips` fixed views ((V, T, C, size, size), label), as stored by `actrec-etl render`.
    augment=False: the train view is the stored view of the sampled frames (no crop, no flip) at `size`."""

    def __init__(
        self,
        source: KeypointSource,
        rows: np.ndarray,
        labels: np.ndarray,
        *,
        clip_len: int,
        train: bool,
        num_clips: int = 1,
        seed: int = 0,
        input_size: int = 0,
        augment: bool = True,
        renderer: str = "numba",
    ):
        if renderer not in RENDERERS:
            raise ActrecError(f"--renderer must be one of {', '.join(RENDERERS)}, not {renderer!r}")
        self.source = source
        self.rows = np.asarray(rows, np.int64)
        self.labels = np.asarray(labels, np.int64)
        self.clip_len, self.train, self.num_clips, self.seed = clip_len, train, num_clips, seed
        self.spec = source.spec
        self.input_size = input_size or self.spec.size
        self.augment = augment
        self.renderer = renderer if train else "numba"  # evaluation views are always the store's values
        limbs = self.spec.limbs(source.layout)
        self.limbs = np.asarray(limbs, np.int64) if limbs is not None else None
        self.collate = collate_keypoints if self.renderer == "torch" else None
        self._threads_set = False

    def __len__(self) -> int:
        return len(self.rows)

    def out_size(self) -> int:
        """Pixel size of the train views this dataset yields (the model input size when augmenting)."""
        return self.input_size if self.augment else self.spec.size

    def __getitem__(self, item: tuple[int, int] | int):
        i, epoch = item if isinstance(item, tuple) else (item, 0)
        row = int(self.rows[i])
        kps, scores = self.source.clip(row)
        img_hw = tuple(int(v) for v in self.source.img_hw[row])
        p = self.spec
        if not self.train:
            frames = sample_test(kps.shape[1], self.clip_len, self.num_clips)  # (V, T)
            box = compact_box(
                kps, scores, padding=p.padding, eps=p.eps, img_hw=img_hw
            )  # whole clip, as stored
            canvas = to_canvas(kps[:, frames.ravel()], box, p.size)
            views = self._render(canvas, scores[:, frames.ravel()], p.size)
            return torch.from_numpy(views.reshape(*frames.shape, *views.shape[1:])), int(self.labels[i])
        rng = numpy_rng(self.seed, "clip", epoch, row)
        frames = sample_train(kps.shape[1], self.clip_len, rng)  # (T,): the same draw as HeatmapClips
        kp, sc = kps[:, frames], scores[:, frames]
        if self.augment:
            kp, sc = random_train_view(
                kp,
                sc,
                img_hw,
                rng,
                size=p.size,
                out_size=self.input_size,
                joint_flip=self.source.layout.joint_flip,
                padding=p.padding,
                eps=p.eps,
            )
        else:
            box = compact_box(kps, scores, padding=p.padding, eps=p.eps, img_hw=img_hw)
            kp = to_canvas(kp, box, p.size)
        if self.renderer == "torch":
            return (
                torch.from_numpy(np.ascontiguousarray(kp)),
                torch.from_numpy(np.ascontiguousarray(sc)),
            ), int(self.labels[i])
        return torch.from_numpy(self._render(kp, sc, self.out_size())[None]), int(self.labels[i])

    def _render(self, kp: np.ndarray, sc: np.ndarray, size: int) -> np.ndarray:
        """(M, T, V, 2) view pixels -> (T, C, size, size) of spec.dtype, on one numba thread (the workers
        are the parallel unit; the tbb threading layer makes the kernels safe in forked workers)."""
        from etl.heatmaps.kernels import render_heatmaps, set_threads

        if not self._threads_set:
            set_threads(1)
            self._threads_set = True
        out = np.empty((kp.shape[1], len(self.source.channels), size, size), dtype=self.spec.dtype)
        return render_heatmaps(
            kp,
            sc,
            out,
            with_joints=self.spec.with_joints,
            limbs=self.limbs,
            sigma=self.spec.sigma,
            eps=self.spec.eps,
        )


def collate_keypoints(items):
    """[((kp (M_i, T, V, 2), sc (M_i, T, V)), label)] -> ((kp (B, M, T, V, 2), sc (B, M, T, V)), labels (B,)),
    persons padded to the batch's largest count with NaN coordinates and score 0 (drawn by no renderer)."""
    m = max(kp.shape[0] for (kp, _), _ in items)
    t, v = items[0][0][0].shape[1:3]
    kps = torch.full((len(items), m, t, v, 2), float("nan"))
    scs = torch.zeros(len(items), m, t, v)
    for b, ((kp, sc), _) in enumerate(items):
        kps[b, : kp.shape[0]], scs[b, : sc.shape[0]] = kp, sc
    return (kps, scs), torch.tensor([label for _, label in items], dtype=torch.int64)


@dataclass
class KeypointInput:
    """Loader batch -> (B, C, T, input_size, input_size) float32 model input on `device`. The views arrive
    augmented (at the input size unless augment is off): renderer "numba" ships (B, 1, T, C, S, S) heatmaps,
    "torch" ships (keypoints (B, M, T, V, 2), scores (B, M, T, V)) rendered here."""

    device: torch.device
    scale: float
    input_size: int
    augment: bool
    renderer: str = "numba"
    spec: RenderSpec | None = None  # for the torch renderer: how to draw
    limbs: list[tuple[int, int]] | None = None  # for the torch renderer: the limbs drawn (spec.limbs(layout))

    def __call__(self, views, generator: torch.Generator) -> torch.Tensor:
        if self.renderer == "torch":
            return resize(self._render(views), self.input_size)  # the identity unless augment is off
        x = to_model_input(views.to(self.device, non_blocking=True)[:, 0], self.scale)  # (B, C, T, S, S)
        return resize(x, self.input_size)

    def _render(self, batch) -> torch.Tensor:
        kp, sc = (t.to(self.device, non_blocking=True) for t in batch)
        spec = self.spec
        size = self.input_size if self.augment else spec.size
        x = render_torch(
            kp,
            sc,
            (size, size),
            with_joints=spec.with_joints,
            limbs=self.limbs,
            sigma=spec.sigma,
            eps=spec.eps,
        )
        x = quantize_like(x, spec.dtype)  # the values the numba path ships (and evaluation reads)
        return x.to(torch.bfloat16) if self.device.type == "cuda" else x
