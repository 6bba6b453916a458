"""Streaming clips from the keypoint store (`--source keypoints`): PoseC3D's train pipeline on coordinates, then
rendered, as MMAction2 trains.

Train items: UniformSampleFrames -> PoseCompact -> Resize -> RandomResizedCrop (redrawn) -> Resize -> Flip
(train/kp_augment.py), all from one RandomState per (seed, epoch, clip), never from the worker count or order;
then either rendered here by the numba kernels in the `--dtype` of the render settings ("numba": the worker
ships (1, T, C, S, S) like HeatmapClips), or shipped as coordinates for the device ("torch": (M, T, V, 2) +
scores, ~10 KB a sample, rendered by train/render_torch.py).
Eval items: the fixed views of `actrec-etl render` (box over the whole clip, canvas, kernels in --dtype), so
validation and `evaluate --source keypoints` read the same values as the heatmap store rendered with the same
settings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from etl.errors import ActrecError
from etl.heatmap_store import render_attrs, store_identity
from etl.heatmaps.compact import compact_box, to_canvas
from etl.heatmaps.spec import RenderSpec
from etl.keypoint_store import REMAKE, KeypointStore, clip_checksum
from etl.skeleton import Layout
from etl.storeio import SEAL_KEY
from train.kp_augment import random_train_view
from train.sampling import sample_test, sample_train
from train.seeding import numpy_rng

RENDERERS = ("numba", "torch")
SCALES = {"uint8": 255.0, "float16": 1.0}


class KeypointSource:
    """A keypoint store seen as the heatmap store `actrec-etl render` would make of it with `spec`: the same
    clip table and the render attrs (etl.heatmap_store.render_attrs: the spec, channels, ..., fingerprint).

    The coordinates are read into memory once (Penn Action: ~40 MB); forked loader workers share them."""

    def __init__(self, path: str | Path, spec: RenderSpec):
        spec.check()
        self.path = Path(path)
        self.spec = spec
        self._identity = store_identity(self.path)
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

    def check_unchanged(self) -> None:
        """Raise if the store at self.path is no longer the one read (as HeatmapStore.check_unchanged): a
        checkpoint must not name data that is not what it was trained on."""
        if store_identity(self.path) != self._identity:
            raise ActrecError(
                f"{self.path} was replaced or changed while training read it (an ingest --overwrite, dvc "
                "checkout, or a copy?): stop and start the command again"
            )

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
