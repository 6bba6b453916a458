"""`--source coordinates`: a keypoint store as graph-network input, PYSKL's GCN pipeline.

Per clip: pre-normalisation (2D: PreNormalize2D, centred on the image and scaled by its half size; 3D: centred
on the layout's centre joint of the first person's first frame, empty frames dropped: PreNormalize3D without the
NTU-specific spine/shoulder rotation) -> optional RandomScale(0.1) + RandomRot(0.3) (PYSKL's strong
augmentation, `--strong-augment`) -> GenSkeFeat (2D: the score as third channel; the `--stream`:
train/sources/streams.py) -> UniformSampleFrames (train: one random view; test: `num_clips` fixed views) ->
FormatGCNInput (persons padded with zeros / cut to NUM_PERSON).

Train items: ((M, T, V, C) float32, label), every draw from one RandomState per (seed, epoch, clip); eval items:
((num_clips, M, T, V, C), label). C = 3: (x, y, score) for 2D, (x, y, z) for 3D. No test-time flip (PYSKL tests
graph models unflipped: flip_permutation is None).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from etl.common.errors import ActrecError
from etl.pose.layout_def import LAYOUT_DEF
from etl.stores.keypoint_store import KeypointStore
from etl.stores.storeio import SEAL_KEY, check_unchanged, store_stamp
from train.config import COORDINATE_FIELDS, COORDS, STREAMS
from train.models.graph import bone_parents, center_index
from train.seeding import numpy_rng
from train.sources.sampling import sample_test, sample_train
from train.sources.streams import stream

NUM_PERSON = 2  # FormatGCNInput(num_person=2)
OPEN_SLICE = 1024  # clips read from the store at a time when the source computes their features
SCALE_RANGE = 0.1  # RandomScale(scale=0.1): each axis x (1 + U(-0.1, 0.1))
ROT_THETA = 0.3  # RandomRot(theta=0.3): angles U(-0.3, 0.3) rad (one for 2D, three for 3D)
CHANNELS = {"2d": ["x", "y", "score"], "3d": ["x", "y", "z"]}


class CoordinateSource:
    """`--source coordinates` (a TrainingSource): a keypoint store's coordinates, as the graph models take them.

    The clips are read into memory once (Penn Action 2D: ~40 MB), as their stream's features (or, with
    --strong-augment, as they are stored: the augmentation comes first); forked loader workers share them."""

    name = "coordinates"
    gives = "coordinates"
    flip_permutation = None  # no test-time flip
    value_scale = 1.0  # views are float32 coordinates already
    view_size = 0  # no pixels: the recipe's input sizes do not apply
    fit_fields = COORDINATE_FIELDS  # the FitConfig fields it reads (recorded in checkpoints' fit_config)

    def __init__(self, path: str | Path, stream: str = "j", coords: str = "2d", strong_augment: bool = False):
        if stream not in STREAMS:
            raise ActrecError(f"--stream must be one of {', '.join(STREAMS)}, not {stream!r}")
        if coords not in COORDS:
            raise ActrecError(f"--coords must be one of {', '.join(COORDS)}, not {coords!r}")
        self.path = Path(path)
        self.stream, self.coords, self.strong_augment = stream, coords, strong_augment
        self._stamp = store_stamp(self.path)
        self.kp = KeypointStore.open(path)
        self.table = self.kp.table
        self.layout = self.kp.layout
        self.classes = self.kp.classes
        self.channels = CHANNELS[coords]
        self.parents = bone_parents(self.layout)
        self.center = center_index(self.layout)
        self.attrs = {
            "kind": "actrec.keypoints (coordinates)",
            "keypoints": {"path": str(self.path), "content_hash": self.kp.attrs["content_hash"]},
            SEAL_KEY: self.kp.attrs.get(SEAL_KEY),
        }
        self.img_hw = self.table[["img_h", "img_w"]].to_numpy(np.int64)
        n = len(self.table)
        # per clip (keypoints (M, T, V, 2|3), scores (M, T, V)), each checked against its checksum; a clip
        # without 3D joints stops --coords 3d with one line
        self._clips: list | None = None
        self._features: list[np.ndarray] | None = None
        if strong_augment:  # scaling and rotation come before the stream: features per sample
            self._clips = self.kp.read_range(0, n, coords=coords)
            return
        # Without random augmentation a clip's features are the same in every epoch and view: computed once
        # here ((M, T', V, 3) float32 per clip, the size of the clip itself) instead of once per sample (most of
        # a sample's time: docs/benchmarks.md). Read in slices so that the raw clips and the features are not
        # both held for the whole store; read-only, since every sample indexes the one copy.
        self._features = []
        for lo in range(0, n, OPEN_SLICE):
            for i, (kp, sc) in enumerate(self.kp.read_range(lo, min(lo + OPEN_SLICE, n), coords=coords)):
                x = self._compute_from(lo + i, kp, sc, None)
                x.flags.writeable = False
                self._features.append(x)

    @classmethod
    def open(cls, path: str | Path, spec=None, coordinates: dict | None = None) -> CoordinateSource:
        """The store at `path` with `coordinates` = {"stream", "coords", "strong_augment"} (fit's options or a
        checkpoint's record); `spec` (render settings) does not apply."""
        c = coordinates or {}
        return cls(path, c.get("stream", "j"), c.get("coords", "2d"), bool(c.get("strong_augment", False)))

    def identity(self) -> dict:
        """What the model learns from: the keypoints, the clip table, and how the source reads them."""
        return {
            "coordinates": {
                "stream": self.stream,
                "coords": self.coords,
                "strong_augment": self.strong_augment,
            },
            "keypoints": self.attrs["keypoints"]["content_hash"],
            "clips": self.attrs[SEAL_KEY]["files"]["clips.parquet"],
        }

    def describe(self, renderer: str) -> str:
        return f" (stream {self.stream}, {self.coords})"

    def layout_record(self) -> dict:
        """The store's layout as configs and checkpoints name it: {"layout": name} for a built-in one, plus its
        definition ("layout_def") for one that is not (etl/pose/layout_def.py reads it back: `stored_layout`)."""
        definition = self.layout.definition
        return {"layout": self.layout.name, **({} if definition is None else {LAYOUT_DEF: definition})}

    def model_options(self) -> dict:
        """Model config fields the store decides: the skeleton graph."""
        return self.layout_record()

    def checkpoint_record(self, input_size: int, clip_len: int) -> dict:
        """What evaluate and predict need to read a store as training did (in place of a heatmap "render")."""
        return {
            "coordinates": {
                **self.layout_record(),
                "stream": self.stream,
                "coords": self.coords,
                "strong_augment": self.strong_augment,
                "clip_len": int(clip_len),
                "channels": list(self.channels),
                "num_person": NUM_PERSON,
            }
        }

    def check_record(self, record: dict, checkpoint: str) -> None:
        """Refuse a store read differently from the checkpoint's training data (layout, stream, coordinates)."""
        want = record.get("coordinates")
        got = self.checkpoint_record(0, 0)["coordinates"]
        keys = ("layout", "stream", "coords")
        if want is None or any(want.get(k) != got.get(k) for k in (*keys, LAYOUT_DEF)):
            raise ActrecError(
                f"{checkpoint} was not trained on {' '.join(f'{k} {got[k]}' for k in keys)} coordinates "
                f"({self.path}): pass the checkpoint's --stream/--coords and a store of its layout"
            )

    def check_unchanged(self) -> None:
        """Raise if the keypoint store was replaced since it was read (as KeypointSource.check_unchanged)."""
        check_unchanged(self.path, self._stamp, "an ingest --overwrite")

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
    ) -> CoordinateClips:
        return CoordinateClips(
            self,
            rows.index.to_numpy(),
            rows["label"].to_numpy(),
            clip_len=clip_len,
            train=train,
            num_clips=num_clips,
            seed=seed,
            augment=augment and self.strong_augment,
        )

    def train_input(
        self, *, device: torch.device, scale: float, input_size: int, augment: bool, renderer: str
    ):
        return CoordinateInput(device)

    def eval_input(self, device: torch.device, scale: float, input_size: int):
        return CoordinateViews(device)

    def features(self, row: int, rng: np.random.RandomState | None) -> np.ndarray:
        """Clip `row` as the stream's (M, T, V, 3) float32 features over all its frames (augmented by `rng`).
        Without `rng`, the array may be the source's own copy: index it, do not write to it."""
        if rng is None and self._features is not None:
            return self._features[row]
        kp, sc = self._clips[row]
        return self._compute_from(row, kp, sc, rng)

    def _compute_from(self, row: int, kp, sc, rng: np.random.RandomState | None) -> np.ndarray:
        h, w = (int(x) for x in self.img_hw[row])
        return clip_features(kp, sc, (h, w), self.coords, self.stream, self.parents, self.center, rng)


def clip_features(
    kp: np.ndarray,
    sc: np.ndarray,
    img_hw: tuple[int, int],
    coords: str,
    stream_name: str,
    parents,
    center: int,
    rng: np.random.RandomState | None = None,
) -> np.ndarray:
    """Keypoints (M, T, V, 2|3) + scores (M, T, V) -> the stream's (M, T', V, 3) float32 features: PYSKL's
    pre-normalisation, optional random scaling + rotation (`rng`), GenSkeFeat (missing joints are 0)."""
    kp = np.nan_to_num(np.asarray(kp, np.float32))
    sc = np.nan_to_num(np.asarray(sc, np.float32))
    if coords == "2d":
        half = np.array([img_hw[1] / 2, img_hw[0] / 2], np.float32)  # (w/2, h/2)
        kp = (kp - half) / half
    else:
        kp = prenormalize_3d(kp, center)
    if rng is not None:
        kp = random_scale_rotate(kp, rng)
    x = np.concatenate([kp, sc[..., None]], axis=-1) if coords == "2d" else kp
    return stream(x, stream_name, parents, has_score=coords == "2d")


def prenormalize_3d(kp: np.ndarray, center: int) -> np.ndarray:
    """PYSKL PreNormalize3D's centring: frames where nobody is seen are dropped (all zero), the joints are moved
    so the first person's centre joint of the first kept frame is the origin (zero joints stay zero)."""
    seen = ~np.all(np.isclose(kp, 0), axis=(0, 2, 3))  # (T,)
    if not seen.any():
        return kp
    kp = kp[:, seen]
    origin = kp[0, 0, center].copy()
    mask = (kp != 0).any(-1, keepdims=True)
    return (kp - origin) * mask


def pose_views(kp, sc, img_hw, record: dict, layout, clip_len: int, num_clips: int) -> np.ndarray:
    """A pose file's clip (2D keypoints (M, T, V, 2) + scores) as a checkpoint's `coordinates` record reads it:
    (num_clips, NUM_PERSON, clip_len, V, C) float32 fixed views, as evaluation's."""
    if record["coords"] != "2d":
        raise ActrecError(
            "predict reads 2D pose files: a --coords 3d checkpoint scores a keypoint store with 3D keypoints "
            "(`actrec-train evaluate CKPT STORE --source coordinates`)"
        )
    x = clip_features(kp, sc, img_hw, "2d", record["stream"], bone_parents(layout), center_index(layout))
    frames = sample_test(x.shape[1], clip_len, num_clips)  # (V, clip_len)
    return np.stack([pad_persons(x[:, f]) for f in frames])


def random_scale_rotate(kp: np.ndarray, rng: np.random.RandomState) -> np.ndarray:
    """PYSKL RandomScale(0.1) then RandomRot(0.3) of (M, T, V, D) coordinates, D = 2 or 3."""
    d = kp.shape[-1]
    kp = kp * (1 + rng.uniform(-SCALE_RANGE, SCALE_RANGE, size=d)).astype(np.float32)
    angles = rng.uniform(-ROT_THETA, ROT_THETA, size=1 if d == 2 else 3)
    if d == 2:
        c, s = np.cos(angles[0]), np.sin(angles[0])
        rot = np.array([[c, -s], [s, c]])
    else:
        rot = np.eye(3)
        for axis, a in enumerate(angles):
            c, s = np.cos(a), np.sin(a)
            i, j = [k for k in range(3) if k != axis]
            r = np.eye(3)
            r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
            rot = r @ rot
    return (kp @ rot.T.astype(np.float32)).astype(np.float32)


def pad_persons(x: np.ndarray, num_person: int = NUM_PERSON) -> np.ndarray:
    """FormatGCNInput: (M, T, V, C) -> (num_person, T, V, C), zero persons added or the last ones cut."""
    if x.shape[0] >= num_person:
        return np.ascontiguousarray(x[:num_person])
    pad = np.zeros((num_person - x.shape[0], *x.shape[1:]), np.float32)
    return np.concatenate([x, pad])


class CoordinateClips(Dataset):
    """Items are (store row index, epoch) pairs from EpochSampler, as HeatmapClips.
    train=True: ((M, T, V, C) float32, label); False: ((num_clips, M, T, V, C), label)."""

    def __init__(self, source: CoordinateSource, rows, labels, *, clip_len, train, num_clips, seed, augment):
        self.source = source
        self.rows = np.asarray(rows, np.int64)
        self.labels = np.asarray(labels, np.int64)
        self.clip_len, self.train, self.num_clips, self.seed = clip_len, train, num_clips, seed
        self.augment = augment

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, item: tuple[int, int] | int):
        i, epoch = item if isinstance(item, tuple) else (item, 0)
        row = int(self.rows[i])
        if self.train:
            rng = numpy_rng(self.seed, "clip", epoch, row)
            x = self.source.features(row, rng if self.augment else None)  # (M, T, V, C)
            frames = sample_train(x.shape[1], self.clip_len, rng)  # (clip_len,)
            return torch.from_numpy(pad_persons(x[:, frames])), int(self.labels[i])
        x = self.source.features(row, None)
        frames = sample_test(x.shape[1], self.clip_len, self.num_clips)  # (V, clip_len)
        views = np.stack([pad_persons(x[:, f]) for f in frames])  # (V, M, T, V, C)
        return torch.from_numpy(views), int(self.labels[i])


class CoordinateInput:
    """Train loader batch (B, M, T, V, C) -> the model input on `device` (already augmented in the workers)."""

    def __init__(self, device: torch.device):
        self.device = device

    def __call__(self, views, generator: torch.Generator) -> torch.Tensor:
        return views.to(self.device, non_blocking=True)


class CoordinateViews:
    """Eval loader batch (B, V, M, T, J, C) -> (B*V, M, T, J, C) model input on `device`."""

    def __init__(self, device: torch.device):
        self.device = device

    def __call__(self, views) -> torch.Tensor:
        return views.to(self.device, non_blocking=True).flatten(0, 1)
