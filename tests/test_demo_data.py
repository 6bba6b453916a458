"""The synthetic demo dataset: format, determinism, split, plausibility, noise rates and learnability."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np
import pytest

from etl.commands.demo_data import (
    ACTIONS,
    IMG_H,
    IMG_W,
    MANIFEST_COLUMNS,
    NoiseConfig,
    _sample_body,
    generate_demo_data,
    held_out_subjects,
)
from etl.common.errors import ActrecError

N_JOINTS = 17
L_SH, R_SH, L_HIP, R_HIP, NOSE = 5, 6, 11, 12, 0


# --- helpers: read the files back the way an independent reader would -------------------------------------


def _manifest(out: Path) -> list[dict]:
    with (out / "clips.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def _detections(out: Path, clip_id: str) -> list[dict]:
    return json.loads((out / "clips" / f"{clip_id}.json").read_text())


def _track(dets: list[dict], n_frames: int, track_id: int = 0) -> np.ndarray:
    """(T, 17, 3) x, y, score of one person; NaN in frames without a detection."""
    kps = np.full((n_frames, N_JOINTS, 3), np.nan)
    for d in dets:
        if d["track_id"] == track_id:
            kps[d["image_id"]] = np.reshape(d["keypoints"], (N_JOINTS, 3))
    return kps


def _all_files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The default dataset, generated once: (out dir, summary, seconds, progress calls)."""
    out = tmp_path_factory.mktemp("demo")
    calls = []
    t0 = time.perf_counter()
    summary = generate_demo_data(out, progress=lambda done, total: calls.append((done, total)))
    return out, summary, time.perf_counter() - t0, calls


@pytest.fixture(scope="module")
def tracks(demo):
    """Main-person keypoints per clip: list of (manifest row, (T, 17, 3) array)."""
    out = demo[0]
    return [(r, _track(_detections(out, r["clip_id"]), int(r["n_frames"]))) for r in _manifest(out)]


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """A small noise-free dataset: (out dir, rows, {clip_id: (T, 17, 3)})."""
    out = tmp_path_factory.mktemp("clean")
    generate_demo_data(out, n_subjects=2, reps=2, noise=NoiseConfig.clean())
    rows = _manifest(out)
    return out, rows, {r["clip_id"]: _track(_detections(out, r["clip_id"]), int(r["n_frames"])) for r in rows}


# --- API, determinism, output folder ----------------------------------------------------------------------


def test_summary_and_progress(demo):
    out, summary, _, calls = demo
    assert len(ACTIONS) >= 6
    assert summary.classes == list(ACTIONS)
    assert summary.n_clips == len(ACTIONS) * 8 * 5 == sum(summary.counts.values())
    assert summary.counts == {"train": len(ACTIONS) * 6 * 5, "test": len(ACTIONS) * 2 * 5}
    assert summary.manifest == out / "clips.csv"
    assert calls[-1] == (summary.n_clips, summary.n_clips)
    assert [c[0] for c in calls] == list(range(1, summary.n_clips + 1))
    size = sum(len(b) for b in _all_files(out).values())
    assert size < 10e6, f"demo data is {size / 1e6:.1f} MB"


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    def run(name, seed):
        generate_demo_data(tmp_path / name, n_subjects=2, reps=1, seed=seed)
        return _all_files(tmp_path / name)

    a, b, c = run("a", 3), run("b", 3), run("c", 4)
    assert a == b
    assert a.keys() == c.keys()
    assert a["clips.csv"] != c["clips.csv"]
    assert sum(a[k] != c[k] for k in a if k.startswith("clips/")) == len(ACTIONS) * 2


def test_a_clip_does_not_depend_on_how_many_others_are_made(tmp_path):
    generate_demo_data(tmp_path / "small", n_subjects=2, reps=1)
    generate_demo_data(tmp_path / "big", n_subjects=3, reps=2)
    for name in ("s01_walk_r1.json", "s02_kick_r1.json"):
        assert (tmp_path / "small" / "clips" / name).read_bytes() == (
            tmp_path / "big" / "clips" / name
        ).read_bytes()


def test_rerun_replaces_an_earlier_demo_but_refuses_foreign_folders(tmp_path):
    out = tmp_path / "demo"
    generate_demo_data(out, n_subjects=3, reps=1)
    generate_demo_data(out, n_subjects=2, reps=1)
    assert {p.stem for p in (out / "clips").glob("*.json")} == {r["clip_id"] for r in _manifest(out)}

    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ActrecError, match="other files"):
        generate_demo_data(tmp_path / "other", n_subjects=2, reps=1)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    "kwargs", [{"n_subjects": 1}, {"reps": 0}, {"seed": -1}, {"n_frames": (50, 40)}, {"n_frames": (4, 8)}]
)
def test_bad_arguments_are_actionable_errors(tmp_path, kwargs):
    with pytest.raises(ActrecError):
        generate_demo_data(tmp_path / "x", **kwargs)


def test_readme_says_synthetic_and_names_classes_and_split(demo):
    out, _summary, _, _ = demo
    text = (out / "README.md").read_text()
    assert "SYNTHETIC" in text
    assert all(a in text for a in ACTIONS)
    assert "subjects 7, 8" in text
    assert str(out) not in text  # no machine-specific paths: keeps the bytes reproducible


# --- manifest and split -----------------------------------------------------------------------------------


def test_manifest_matches_the_clip_files(demo):
    out = demo[0]
    assert (out / "clips.csv").read_text().splitlines()[0] == ",".join(MANIFEST_COLUMNS)
    rows = _manifest(out)
    ids = [r["clip_id"] for r in rows]
    assert len(ids) == len(set(ids))
    assert set(ids) == {p.stem for p in (out / "clips").glob("*.json")}
    for r in rows:
        assert r["label_name"] in ACTIONS
        assert (int(r["img_h"]), int(r["img_w"])) == (IMG_H, IMG_W) == (480, 640)
        assert 40 <= int(r["n_frames"]) <= 72
        assert 0.7 <= float(r["speed"]) <= 1.6  # above 1.3 only where a long action is squeezed into a clip
        assert 1 <= int(r["camera"]) <= 5


def test_labels_balanced_and_split_by_subject(demo):
    rows = _manifest(demo[0])
    per_class = {a: sum(r["label_name"] == a for r in rows) for a in ACTIONS}
    assert set(per_class.values()) == {8 * 5}
    train = {r["subject"] for r in rows if r["split"] == "train"}
    test = {r["subject"] for r in rows if r["split"] == "test"}
    assert train.isdisjoint(test)
    assert test == {"7", "8"}
    assert len(train) == 6
    assert {r["split"] for r in rows} == {"train", "test"}
    assert len({r["camera"] for r in rows}) == 5
    assert len({r["n_frames"] for r in rows}) > 20


@pytest.mark.parametrize(("n", "test"), [(2, [2]), (3, [3]), (4, [4]), (8, [7, 8]), (12, [10, 11, 12])])
def test_about_a_quarter_of_subjects_are_held_out(n, test):
    assert held_out_subjects(n) == test


# --- JSON structure ---------------------------------------------------------------------------------------


def test_results_json_structure(demo):
    out = demo[0]
    for r in _manifest(out):
        n = int(r["n_frames"])
        dets = _detections(out, r["clip_id"])
        keys = [(d["image_id"], d["track_id"]) for d in dets]
        assert keys == sorted(set(keys)), "one detection per frame and person, in frame order"
        for d in dets:
            assert set(d) == {"image_id", "category_id", "keypoints", "score", "track_id"}
            assert d["category_id"] == 1
            assert d["track_id"] in (0, 1)
            assert 0 <= d["image_id"] < n
            assert 0 < d["score"] <= 1
            kps = np.reshape(d["keypoints"], (N_JOINTS, 3))
            assert ((kps[:, 0] >= 0) & (kps[:, 0] <= IMG_W - 1)).all()
            assert ((kps[:, 1] >= 0) & (kps[:, 1] <= IMG_H - 1)).all()
            assert ((kps[:, 2] >= 0) & (kps[:, 2] <= 1)).all()
        main_frames = {t for t, track in keys if track == 0}
        assert {0, n - 1} <= main_frames, "the first and the last frame always have the main person"


def test_json_is_rounded_and_one_detection_per_line(demo):
    text = (demo[0] / "clips" / "s01_wave_r1.json").read_text()
    lines = text.splitlines()
    assert lines[0] == "["
    assert lines[-1] == "]"
    assert all(line.startswith('{"category_id":1,') for line in lines[1:-1])
    numbers = [n for d in json.loads(text) for n in d["keypoints"]]
    assert all(round(n, 2) == n for n in numbers)


# --- plausibility of bodies and actions -------------------------------------------------------------------


def test_body_proportions_are_plausible(tracks):
    ratios, head_up = [], []
    for _, kps in tracks:
        ok = (kps[:, [L_SH, R_SH, L_HIP, R_HIP, NOSE], 2] >= 0.05).all(axis=1)  # (T,)
        k = kps[ok]
        shoulder_mid, hip_mid = k[:, [L_SH, R_SH], :2].mean(1), k[:, [L_HIP, R_HIP], :2].mean(1)
        torso = np.linalg.norm(shoulder_mid - hip_mid, axis=-1)
        ratios.append(np.median(np.linalg.norm(k[:, L_SH, :2] - k[:, R_SH, :2], axis=-1) / torso))
        head_up.append(k[:, NOSE, 1] < hip_mid[:, 1])  # image y grows downwards
    assert 0.35 < np.median(ratios) < 1.1
    assert np.mean(np.concatenate(head_up)) > 0.95


def test_subjects_have_different_bodies():
    bodies = [_sample_body(np.random.default_rng([0, 0, s])) for s in range(1, 9)]
    heights = [b.height for b in bodies]
    assert max(heights) - min(heights) > 0.1
    arm_to_leg = [(b.upper_arm + b.forearm) / (b.thigh + b.shin) for b in bodies]
    assert np.ptp(arm_to_leg) > 0.03
    shoulders = [b.shoulder_half / b.height for b in bodies]
    assert np.ptp(shoulders) > 0.01


def _hip_mid(kps: np.ndarray) -> np.ndarray:
    return kps[:, [L_HIP, R_HIP], :2].mean(1)  # (T, 2)


def _torso(kps: np.ndarray) -> float:
    return float(np.nanmedian(np.linalg.norm(kps[:, [L_SH, R_SH], :2].mean(1) - _hip_mid(kps), axis=-1)))


def test_actions_do_what_their_labels_say(clean):
    _, rows, kps = clean
    for r in rows:
        k, action = kps[r["clip_id"]], r["label_name"]
        assert not np.isnan(k).any()
        assert (k[..., 2] >= 0.05).all()  # the clean set has no gaps
        hip, torso = _hip_mid(k), _torso(k)
        drop = (hip[-1, 1] - hip[0, 1]) / torso  # > 0: hips lower at the end than at the start
        travel = np.linalg.norm(hip[-1] - hip[0]) / torso
        if action == "sit_down":
            assert drop > 0.3, r["clip_id"]
        elif action == "stand_up":
            assert drop < -0.3, r["clip_id"]
        elif action in ("walk", "carry"):
            assert travel > 1.0, r["clip_id"]
        else:
            assert travel < 0.6, r["clip_id"]
        if action == "pick_up":  # the head comes down towards the hips and goes back up
            head_height = (hip[:, 1] - k[:, NOSE, 1]) / torso  # (T,)
            assert head_height.min() < 0.6 * head_height[0], r["clip_id"]


def test_image_is_not_mirrored(clean):
    """A person facing the camera has the left shoulder on the image's right (flip augmentation relies on it)."""
    _, rows, kps = clean
    facing = [kps[r["clip_id"]] for r in rows if r["label_name"] not in ("walk", "carry")]
    left_on_right = np.concatenate([k[:, L_SH, 0] > k[:, R_SH, 0] for k in facing])
    assert left_on_right.mean() > 0.8


# --- detector noise ---------------------------------------------------------------------------------------


def test_noise_missed_detections_and_bystanders_at_the_configured_rates(demo, tracks):
    out, noise = demo[0], NoiseConfig()
    scores = np.concatenate([k[..., 2][~np.isnan(k[..., 2])] for _, k in tracks])
    missed = scores < 0.05
    # occluded joints are missed more often, so the rate sits between 1x and 2x the configured one
    assert noise.p_joint_missed * 0.8 < missed.mean() < noise.p_joint_missed * 2.0
    ok = scores[~missed]
    assert 0.7 < np.median(ok) < 0.95
    assert np.quantile(ok, 0.05) > 0.3
    assert ok.max() <= 0.99
    assert np.quantile(ok, 0.25) < 0.85  # occluded and noisy joints do get lower confidence

    zeroed = 0
    with_gaps = with_bystander = 0
    for r, k in tracks:
        frames_seen = ~np.isnan(k[:, 0, 0])
        with_gaps += not frames_seen.all()
        dets = _detections(out, r["clip_id"])
        with_bystander += any(d["track_id"] == 1 for d in dets)
        zeroed += int((k[frames_seen] == 0).all(axis=-1).sum())
    n = len(tracks)
    assert abs(with_gaps / n - noise.p_clip_missed_frames) < 0.1
    assert abs(with_bystander / n - noise.p_bystander) < 0.1
    assert 0.3 < zeroed / missed.sum() < 0.7  # half the missed joints are written as 0, 0, 0


def _pixel_height(kps: np.ndarray) -> np.ndarray:
    """Vertical extent of the detected joints in each frame where the person is detected."""
    seen = kps[..., 2] >= 0.05  # (T, 17), False for NaN
    y = np.where(seen, kps[..., 1], np.nan)[seen.any(axis=1)]
    return np.nanmax(y, axis=1) - np.nanmin(y, axis=1)


def test_bystander_is_in_the_background_and_in_part_of_the_clip(demo):
    out = demo[0]
    smaller, partial = [], []
    for r in _manifest(out):
        dets = _detections(out, r["clip_id"])
        if not any(d["track_id"] == 1 for d in dets):
            continue
        n = int(r["n_frames"])
        main, other = _track(dets, n, 0), _track(dets, n, 1)
        seen = ~np.isnan(other[:, 0, 0])
        partial.append(seen.mean() < 1)
        # the actor may sit or bend, so compare with the actor's height when upright
        smaller.append(np.median(_pixel_height(other)) < np.quantile(_pixel_height(main), 0.9))
    assert len(smaller) > 20
    assert np.mean(smaller) > 0.9
    assert np.mean(partial) > 0.5


def test_jitter_is_there_and_grows_towards_the_extremities(tmp_path, clean):
    noisy_out = tmp_path / "noisy"
    generate_demo_data(
        noisy_out,
        n_subjects=2,
        reps=2,
        noise=NoiseConfig(jitter=1.0, p_joint_missed=0, p_swap=0, p_clip_missed_frames=0, p_bystander=0),
    )
    _, rows, clean_kps = clean

    def roughness(k, joints):
        # median second difference of the joint track relative to the body size: (T-2, J) -> scalar
        acc = np.linalg.norm(np.diff(k[:, joints, :2], n=2, axis=0), axis=-1)
        return np.nanmedian(acc) / _torso(k)

    wrists, shoulders = [9, 10], [L_SH, R_SH]
    r_noisy_w, r_noisy_s, r_clean_w = [], [], []
    for r in rows:
        k = _track(_detections(noisy_out, r["clip_id"]), int(r["n_frames"]))
        r_noisy_w.append(roughness(k, wrists))
        r_noisy_s.append(roughness(k, shoulders))
        r_clean_w.append(roughness(clean_kps[r["clip_id"]], wrists))
    assert np.median(r_noisy_w) > 3 * np.median(r_clean_w)
    assert np.median(r_noisy_w) > 1.5 * np.median(r_noisy_s)


# --- learnable, but not from a single static cue ----------------------------------------------------------


def _fill(xy: np.ndarray) -> np.ndarray:
    """Linear interpolation over time of NaN gaps in (T, J, 2); joints never seen become 0."""
    t = np.arange(len(xy))
    flat = xy.reshape(len(xy), -1).copy()
    for c in range(flat.shape[1]):
        ok = ~np.isnan(flat[:, c])
        flat[:, c] = np.interp(t, t[ok], flat[ok, c]) if ok.any() else 0.0
    return flat.reshape(xy.shape)


def _features(kps: np.ndarray, static: bool) -> np.ndarray:
    """Body-size normalised pose features of one clip (T, 17, 3).

    static: the middle frame only. Otherwise: mean pose over three thirds of the clip, per-joint spread and
    speed, and how far and up/down the hips move.
    """
    xy = _fill(np.where(kps[..., 2:] >= 0.05, kps[..., :2], np.nan))  # (T, 17, 2)
    hip = xy[:, [L_HIP, R_HIP]].mean(1)  # (T, 2)
    scale = np.median(np.linalg.norm(xy[:, [L_SH, R_SH]].mean(1) - hip, axis=-1))
    rel = (xy - hip[:, None]) / scale  # (T, 17, 2)
    if static:
        return rel[len(rel) // 2].ravel()
    thirds = np.array_split(np.arange(len(rel)), 3)
    disp = (hip - hip[0]) / scale  # (T, 2)
    parts = [rel[s].mean(0) for s in thirds] + [rel.std(0), np.abs(np.diff(rel, axis=0)).mean(0)]
    parts.append(np.array([abs(disp[-1, 0])] + [disp[s, 1].mean() for s in thirds]))
    return np.concatenate([p.ravel() for p in parts])


def _softmax_regression(x: np.ndarray, y: np.ndarray, k: int, l2: float = 1e-2, steps: int = 500):
    """Multinomial logistic regression by full-batch gradient descent: weights (D, k), bias (k,)."""
    w, b, onehot = np.zeros((x.shape[1], k)), np.zeros(k), np.eye(k)[y]
    for _ in range(steps):
        z = x @ w + b
        p = np.exp(z - z.max(1, keepdims=True))
        g = (p / p.sum(1, keepdims=True) - onehot) / len(x)  # (N, k)
        w -= 0.5 * (x.T @ g + l2 * w)
        b -= 0.5 * g.sum(0)
    return w, b


def _test_accuracy(tracks, static: bool) -> tuple[float, float]:
    """(nearest-centroid, logistic-regression) accuracy on the test split, trained on the train split."""
    x = np.array([_features(k, static) for _, k in tracks])
    y = np.array([ACTIONS.index(r["label_name"]) for r, _ in tracks])
    train = np.array([r["split"] == "train" for r, _ in tracks])
    x = (x - x[train].mean(0)) / (x[train].std(0) + 1e-6)
    centroids = np.stack([x[train & (y == c)].mean(0) for c in range(len(ACTIONS))])  # (k, D)
    nearest = np.argmin(((x[~train, None] - centroids) ** 2).sum(-1), axis=1)
    w, b = _softmax_regression(x[train], y[train], len(ACTIONS))
    logreg = np.argmax(x[~train] @ w + b, axis=1)
    return float((nearest == y[~train]).mean()), float((logreg == y[~train]).mean())


def test_classes_are_learnable_from_motion_but_not_from_one_frame(tracks):
    chance = 1 / len(ACTIONS)
    centroid, logreg = _test_accuracy(tracks, static=False)
    _, logreg_static = _test_accuracy(tracks, static=True)
    print(
        f"test accuracy: nearest centroid {centroid:.3f}, logistic regression {logreg:.3f}, "
        f"middle frame only {logreg_static:.3f} (chance {chance:.3f})"
    )
    assert centroid > 2 * chance
    assert logreg > max(2 * chance, 0.7)
    assert logreg_static < logreg - 0.1  # one static pose is not enough: the motion matters
