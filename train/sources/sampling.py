"""Temporal sampling at load time, as PoseC3D's UniformSampleFrames: the store caches whole clips, the loader
picks `clip_len` frames per view.

Training: one view, a random frame inside each of `clip_len` equal segments (random offsets).
Evaluation: `num_clips` views at fixed offsets (a RandomState seeded with 255, as PoseC3D's test mode), so
evaluation is the same every time. Clips shorter than `clip_len` loop (indices wrap around).
"""

from __future__ import annotations

import numpy as np

TEST_SEED = 255  # PoseC3D's UniformSampleFrames(test_mode=True) seed


def _one_view(
    n_frames: int, clip_len: int, rng: np.random.RandomState, start_if_short: int | None
) -> np.ndarray:
    if n_frames < clip_len:
        start = rng.randint(0, n_frames) if start_if_short is None else start_if_short
        return np.arange(start, start + clip_len)
    if n_frames < 2 * clip_len:
        # keep every frame order, skip n_frames - clip_len of them at random places
        offset = np.zeros(clip_len + 1, dtype=np.int64)
        offset[rng.choice(clip_len + 1, n_frames - clip_len, replace=False)] = 1
        return np.arange(clip_len) + np.cumsum(offset)[:-1]
    bounds = np.arange(clip_len + 1) * n_frames // clip_len
    return bounds[:clip_len] + rng.randint(np.diff(bounds))


def sample_train(n_frames: int, clip_len: int, rng: np.random.RandomState) -> np.ndarray:
    """(clip_len,) frame indices in [0, n_frames): one random view."""
    return np.mod(_one_view(n_frames, clip_len, rng, None), n_frames)


def sample_test(n_frames: int, clip_len: int, num_clips: int = 1) -> np.ndarray:
    """(num_clips, clip_len) fixed frame indices: views spread over the clip, identical on every call."""
    rng = np.random.RandomState(TEST_SEED)
    views = []
    for i in range(num_clips):
        start = i if n_frames < num_clips else i * n_frames // num_clips
        views.append(_one_view(n_frames, clip_len, rng, start))
    return np.mod(np.stack(views), n_frames)
