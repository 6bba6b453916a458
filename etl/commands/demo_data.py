"""A small, seeded, honestly-labelled SYNTHETIC dataset for the demo and the tests.

Animated COCO-17 skeletons, written in a real input format (COCO keypoint-detection results, one JSON per clip)
so that the demo exercises the real readers. How a clip is made:

1. a per-subject 3D stick figure (height, limb ratios, shoulder and hip width);
2. an action as joint-angle trajectories over normalised time, with per-clip amplitude, tempo ("speed"),
   phase, start offset, hand/leg used, plus idle sway and an idle arm posture (hanging, phone, hand on hip...);
3. forward kinematics, feet on the floor, a place and heading in the room;
4. a perspective camera (one of five positions, azimuth -60..60 deg) into a 480x640 image;
5. detector noise: jitter scaled with body size, scores lower for noisy and self-occluded joints, missed joints,
   missed frames and, in some clips, a bystander in the background (track_id 1).

Nothing here comes from real people. Every random draw is seeded per subject and per clip, so the same seed
writes byte-identical files, and one clip does not change when other clips are added.

Body frame: x forward, y left, z up (metres). World: x right and y away from the default camera, z up.
Angles inside `_Pose` are degrees.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from etl.common.errors import ActrecError
from etl.pose.skeleton import COCO17

ACTIONS: tuple[str, ...] = ("pick_up", "carry", "sit_down", "stand_up", "wave", "walk", "drink", "kick")
MANIFEST_COLUMNS = (
    "clip_id",
    "label_name",
    "split",
    "subject",
    "camera",
    "speed",
    "img_h",
    "img_w",
    "n_frames",
)
IMG_H, IMG_W = 480, 640
FPS = 30.0  # frames per second the motion is timed for (the files carry frame indices only)
FOCAL_PX = 520.0
TEST_FRACTION = 0.25  # share of subjects held out for the test split

# Camera rigs: (azimuth deg, elevation deg, distance m) around the room; per clip they move by a few cm/deg.
CAMERAS = ((-60.0, 12.0, 5.6), (-30.0, 18.0, 5.0), (0.0, 10.0, 5.4), (30.0, 22.0, 4.8), (60.0, 15.0, 5.8))
CAMERA_TARGET = np.array([0.0, 0.2, 0.9])  # the point every camera looks at (m)

_J = {name: i for i, name in enumerate(COCO17.joints)}
_SIDE = np.array([1.0, -1.0])  # left, right: sign of the body-frame y axis


def _per_joint(
    face: float,
    ear: float,
    shoulder: float,
    elbow: float,
    wrist: float,
    hip: float,
    knee: float,
    ankle: float,
) -> np.ndarray:
    """(17,) values in COCO-17 order from one value per body part, left and right alike."""
    pairs = [v for v in (shoulder, elbow, wrist, hip, knee, ankle) for _ in (0, 1)]
    return np.array([face, face, face, ear, ear, *pairs])


# Jitter (fraction of the body's pixel height) and base confidence per joint: extremities are noisier.
_JITTER = _per_joint(
    face=0.006, ear=0.007, shoulder=0.008, elbow=0.012, wrist=0.018, hip=0.010, knee=0.012, ankle=0.016
)  # (17,)
_BASE_SCORE = _per_joint(
    face=0.93, ear=0.88, shoulder=0.92, elbow=0.88, wrist=0.84, hip=0.86, knee=0.87, ankle=0.84
)  # (17,)
# Joints hidden by the torso when their side faces away from the camera: arms and legs, (left, right) indices.
_LIMB_JOINTS = np.array(
    [
        [_J["left_elbow"], _J["right_elbow"]],
        [_J["left_wrist"], _J["right_wrist"]],
        [_J["left_knee"], _J["right_knee"]],
        [_J["left_ankle"], _J["right_ankle"]],
        [_J["left_hip"], _J["right_hip"]],
        [_J["left_shoulder"], _J["right_shoulder"]],
    ]
)
_LIMB_OCCLUSION = np.array([0.8, 1.0, 0.6, 0.7, 0.4, 0.3])  # how much each of those rows can be hidden
_FACE = [_J["nose"], _J["left_eye"], _J["right_eye"], _J["left_ear"], _J["right_ear"]]
# Face points in head-radius units, head frame (forward, left, up), COCO order nose, eyes, ears: (5, 3)
_FACE_OFFSETS = np.array(
    [[1.05, 0.0, -0.15], [0.8, 0.35, 0.15], [0.8, -0.35, 0.15], [-0.1, 0.95, 0.0], [-0.1, -0.95, 0.0]]
)


@dataclass(frozen=True)
class NoiseConfig:
    """How imperfect the simulated detector is. `NoiseConfig.clean()` turns every imperfection off."""

    jitter: float = 1.0  # multiplier on the per-joint jitter
    p_joint_missed: float = 0.02  # per joint and frame: score < 0.05, or x = y = s = 0
    p_clip_missed_frames: float = 0.3  # clips with 1-3 short runs of frames where nobody was detected
    p_bystander: float = 0.25  # clips with a second person (track_id 1) in part of the clip
    p_swap: float = 0.01  # per frame: the detector mixes up left and right of one arm or leg joint

    @classmethod
    def clean(cls) -> NoiseConfig:
        return cls(jitter=0.0, p_joint_missed=0.0, p_clip_missed_frames=0.0, p_bystander=0.0, p_swap=0.0)


@dataclass
class DemoSummary:
    out_dir: Path
    n_clips: int
    classes: list[str]
    counts: dict[str, int]  # clips per split
    manifest: Path


@dataclass(frozen=True)
class Body:
    """One subject's stick figure (metres)."""

    height: float
    thigh: float
    shin: float
    ankle: float  # ankle joint above the floor
    torso: float  # pelvis centre to the shoulder line
    shoulder_half: float
    hip_half: float
    upper_arm: float
    forearm: float
    neck: float  # shoulder line to head centre
    head: float  # head radius


@dataclass
class _Pose:
    """Joint angles (degrees) and root travel over T frames. Arrays are (T,) or (T, 2) for [left, right].

    Limb angles are spherical, relative to the (yawed, not pitched) body frame so hanging arms stay vertical
    when the trunk bends: flex swings forward from hanging straight down (180 = straight up), abd swings
    outwards (negative = across the body).
    """

    trunk: np.ndarray  # forward lean of the spine from vertical
    head_pitch: np.ndarray  # nodding down, on top of the trunk lean
    head_yaw: np.ndarray  # turning left
    hip: np.ndarray  # (T, 2) thigh flexion
    hip_abd: np.ndarray  # (T, 2)
    knee: np.ndarray  # (T, 2) knee flexion (shin flex = hip - knee)
    sh_flex: np.ndarray  # (T, 2) upper arm
    sh_abd: np.ndarray  # (T, 2)
    fa_flex: np.ndarray  # (T, 2) forearm
    fa_abd: np.ndarray  # (T, 2)
    fwd: np.ndarray  # root travel along the heading (m)
    lat: np.ndarray  # root sway to the left (m)
    anchor_feet: bool = True  # keep the supporting foot in place (off for walking)
    free_arms: list[int] = field(default_factory=lambda: [0, 1])  # arms the action leaves to the idle posture


@dataclass(frozen=True)
class _Clip:
    clip_id: str
    action: str
    subject: int
    rep: int
    split: str


# ----------------------------------------------------------------------------------------------------------
# public entry point
# ----------------------------------------------------------------------------------------------------------


def generate_demo_data(
    out_dir: Path,
    *,
    n_subjects: int = 8,
    reps: int = 5,
    seed: int = 0,
    n_frames: tuple[int, int] = (40, 72),
    progress: Callable[[int, int], None] | None = None,
    noise: NoiseConfig | None = None,
) -> DemoSummary:
    """Write OUT/clips/<clip_id>.json (COCO keypoint results), OUT/clips.csv (manifest) and OUT/README.md.

    Every subject performs every action `reps` times; the last ~25% of the subjects (at least one) form the
    test split. `progress(done, total)` is called after each clip.
    """
    _check_args(n_subjects, reps, seed, n_frames)
    noise = noise or NoiseConfig()
    out_dir = Path(out_dir)
    clips = _plan_clips(n_subjects, reps)
    clip_dir = _prepare_out_dir(out_dir, {c.clip_id for c in clips})
    bodies = {s: _sample_body(np.random.default_rng([seed, 0, s])) for s in range(1, n_subjects + 1)}

    rows = []
    for done, clip in enumerate(clips, start=1):
        rng = np.random.default_rng([seed, 1, clip.subject, ACTIONS.index(clip.action), clip.rep])
        detections, meta = _make_clip(clip, bodies[clip.subject], rng, n_frames, noise)
        _write_results(clip_dir / f"{clip.clip_id}.json", detections)
        rows.append(
            {
                "clip_id": clip.clip_id,
                "label_name": clip.action,
                "split": clip.split,
                "subject": clip.subject,
                "img_h": IMG_H,
                "img_w": IMG_W,
                **meta,
            }
        )
        if progress is not None:
            progress(done, len(clips))

    manifest = out_dir / "clips.csv"
    _write_manifest(manifest, rows)
    counts = {split: sum(r["split"] == split for r in rows) for split in ("train", "test")}
    summary = DemoSummary(
        out_dir=out_dir, n_clips=len(rows), classes=list(ACTIONS), counts=counts, manifest=manifest
    )
    (out_dir / "README.md").write_bytes(_readme(summary, n_subjects, reps, seed, n_frames, noise).encode())
    return summary


def held_out_subjects(n_subjects: int) -> list[int]:
    """Subjects of the test split: the last ~25%, at least one (1-based ids)."""
    n_test = max(1, round(n_subjects * TEST_FRACTION))
    return list(range(n_subjects - n_test + 1, n_subjects + 1))


def _check_args(n_subjects: int, reps: int, seed: int, n_frames: tuple[int, int]) -> None:
    if n_subjects < 2:
        raise ActrecError(
            f"demo data needs at least 2 subjects (one for train, one for test), got {n_subjects}"
        )
    if reps < 1:
        raise ActrecError(f"reps must be at least 1, got {reps}")
    if seed < 0:
        raise ActrecError(f"seed must be a non-negative integer, got {seed}")
    lo, hi = n_frames
    if not 16 <= lo <= hi:
        raise ActrecError(f"n_frames must be (lo, hi) with 16 <= lo <= hi, got {n_frames}")


def _plan_clips(n_subjects: int, reps: int) -> list[_Clip]:
    test = set(held_out_subjects(n_subjects))
    return [
        _Clip(f"s{s:02d}_{a}_r{r}", a, s, r, "test" if s in test else "train")
        for s in range(1, n_subjects + 1)
        for a in ACTIONS
        for r in range(1, reps + 1)
    ]


def _prepare_out_dir(out_dir: Path, clip_ids: set[str]) -> Path:
    """Create OUT/clips; overwrite an earlier demo dataset (dropping its stale clips) but nothing else."""
    ours = {"clips", "clips.csv", "README.md"}
    if out_dir.exists():
        if not out_dir.is_dir():
            raise ActrecError(f"{out_dir} exists and is not a folder")
        foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in ours)
        if foreign:
            raise ActrecError(
                f"{out_dir} holds other files ({', '.join(foreign[:3])}...); "
                "give an empty or new folder, or a previous demo-data output"
            )
    clip_dir = out_dir / "clips"
    clip_dir.mkdir(parents=True, exist_ok=True)
    for old in clip_dir.glob("*.json"):
        if old.stem not in clip_ids:
            old.unlink()
    return clip_dir


# ----------------------------------------------------------------------------------------------------------
# bodies and poses
# ----------------------------------------------------------------------------------------------------------


def _sample_body(rng: np.random.Generator) -> Body:
    """Anthropometric ratios (Drillis & Contini) with per-subject variation of a few per cent."""
    h = rng.uniform(1.52, 1.92)
    leg, arm, torso, shoulder, hip = rng.uniform(
        [0.93, 0.92, 0.92, 0.86, 0.85], [1.07, 1.08, 1.08, 1.14, 1.15]
    )
    return Body(
        height=h,
        thigh=0.245 * h * leg,
        shin=0.246 * h * leg,
        ankle=0.039 * h,
        torso=0.29 * h * torso,
        shoulder_half=0.115 * h * shoulder,
        hip_half=0.075 * h * hip,
        upper_arm=0.186 * h * arm,
        forearm=0.146 * h * arm,
        neck=0.105 * h,
        head=0.055 * h,
    )


def _idle_pose(n: int, rng: np.random.Generator) -> _Pose:
    """Standing at rest with a slow sway of trunk, head and arms (so 'still' is never perfectly still)."""
    t = np.arange(n) / FPS
    phase = rng.uniform(0, 2 * np.pi, 4)
    sway = np.sin(2 * np.pi * rng.uniform(0.2, 0.5) * t + phase[0])  # (T,)
    arm_sway = np.sin(2 * np.pi * rng.uniform(0.2, 0.5) * t[:, None] + phase[1:3])  # (T, 2)
    head_turn = rng.uniform(-25, 25) * np.sin(2 * np.pi * rng.uniform(0.05, 0.25) * t + phase[3])
    ones = np.ones((n, 2))
    return _Pose(
        trunk=rng.uniform(2, 7) + 1.5 * sway,
        head_pitch=np.full(n, rng.uniform(0, 12)),
        head_yaw=head_turn,
        hip=ones * rng.uniform(-3, 3, 2),
        hip_abd=ones * rng.uniform(2, 7, 2),
        knee=ones * rng.uniform(2, 8, 2),
        sh_flex=ones * rng.uniform(2, 10, 2) + 2 * arm_sway,
        sh_abd=ones * rng.uniform(5, 12, 2),
        fa_flex=ones * rng.uniform(10, 25, 2) + 3 * arm_sway,
        fa_abd=ones * rng.uniform(0, 8, 2),
        fwd=np.zeros(n),
        lat=0.01 * sway,
    )


# Idle arm postures (upper arm flex, abd; forearm flex, abd) for arms the action does not use.
_ARM_STYLES = {
    "hang": None,  # keep the idle pose
    "phone": (18.0, 5.0, 100.0, -25.0),  # forearm forward at chest height
    "hip": (-15.0, 35.0, 45.0, -60.0),  # hand on the hip, elbow out
    "behind": (-25.0, 8.0, -35.0, -35.0),  # hands behind the back
}
_ARM_STYLE_P = (0.6, 0.15, 0.12, 0.13)


def _apply_arm_style(pose: _Pose, rng: np.random.Generator) -> None:
    """Give each free arm an everyday posture, so an arm held still or forward is not by itself a class cue."""
    for side in pose.free_arms:
        style = _ARM_STYLES[str(rng.choice(list(_ARM_STYLES), p=_ARM_STYLE_P))]
        if style is None:
            continue
        jit = rng.normal(0, 6, 4)
        sh_f, sh_a, fa_f, fa_a = np.array(style) + jit
        pose.sh_flex[:, side] = sh_f
        pose.sh_abd[:, side] = sh_a
        pose.fa_flex[:, side] = fa_f
        pose.fa_abd[:, side] = fa_a


def _smooth(x: np.ndarray) -> np.ndarray:
    """Smoothstep of x clipped to [0, 1]: 0 -> 1 with zero slope at both ends."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _window(s: np.ndarray, a: float, b: float, c: float, d: float) -> np.ndarray:
    """0 before a, rising to 1 at b, holding to c, back to 0 at d."""
    return _smooth((s - a) / max(b - a, 1e-6)) * (1 - _smooth((s - c) / max(d - c, 1e-6)))


def _blend(cur: np.ndarray, target: float | np.ndarray, w: np.ndarray) -> np.ndarray:
    """Move a (T,) angle track towards `target` by weight w (T,)."""
    return cur + (target - cur) * w


def _progress(n: int, base_s: float, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Normalised time s (T,) of a one-shot action and its speed (base duration / actual duration).

    The action takes base_s seconds at speed 1 and a random tempo of +-30%; it starts after a random idle
    offset and, if the clip is too short, is squeezed into it (which the reported speed then says).
    """
    want = base_s * FPS / rng.uniform(0.7, 1.3)
    dur = float(np.clip(want, 12, n - 3))
    t0 = rng.uniform(0, n - 1 - dur)
    s = (np.arange(n) - t0) / dur
    return np.clip(s, 0.0, 1.0), base_s * FPS / dur


# ----------------------------------------------------------------------------------------------------------
# actions: each sets up the pose for one clip and returns its speed
# ----------------------------------------------------------------------------------------------------------


def _walk(pose: _Pose, rng: np.random.Generator, body: Body, *, carry: bool = False) -> float:
    """Gait cycle: legs in antiphase, knees flex in swing, arms swing against the legs; travels forward."""
    n = len(pose.trunk)
    speed = rng.uniform(0.7, 1.3)
    amp = rng.uniform(0.85, 1.1) * (0.8 if carry else 1.0)
    cycles_per_frame = speed * (0.9 if carry else 1.0) / (1.1 * FPS)
    phi = 2 * np.pi * (cycles_per_frame * np.arange(n) + rng.uniform())  # (T,)
    leg = np.stack([np.sin(phi), np.sin(phi + np.pi)], axis=1)  # (T, 2) left, right
    swing = np.stack([np.cos(phi + 0.3), np.cos(phi + np.pi + 0.3)], axis=1)
    pose.hip = 24 * amp * leg
    pose.knee = 5 + 55 * amp * np.clip(swing, 0, None) ** 2
    pose.trunk = pose.trunk + (-2.0 if carry else 3.0)
    pose.anchor_feet = False
    stride = 0.72 * body.height * amp  # metres per gait cycle
    pose.fwd = stride * cycles_per_frame * (np.arange(n) - (n - 1) / 2)
    pose.lat = 0.015 * np.sin(phi)
    if carry:
        _hold_object(pose, rng, phi)
    else:
        arm_amp = rng.uniform(12, 26) * amp
        pose.sh_flex = 4 - arm_amp * leg + rng.normal(0, 2, 2)
        pose.fa_flex = pose.sh_flex + rng.uniform(12, 30) + 6 * np.clip(-leg, 0, None)
    return speed


def _hold_object(pose: _Pose, rng: np.random.Generator, phi: np.ndarray) -> None:
    """Both hands in front of the body holding a box; it bounces a little with each step."""
    bounce = 2.0 * np.sin(2 * phi)[:, None]  # (T, 1)
    pose.sh_flex = rng.uniform(12, 35) + bounce + rng.normal(0, 2, 2)
    pose.sh_abd = rng.uniform(-8, 8) + np.zeros((len(phi), 2))
    pose.fa_flex = rng.uniform(65, 95) + bounce
    pose.fa_abd = rng.uniform(-35, -15) + np.zeros((len(phi), 2))
    pose.free_arms = []


def _sit_down(pose: _Pose, rng: np.random.Generator, body: Body) -> float:
    """Lean forward, lower the hips onto a chair (thighs level, knees ~90 deg), sit back up straight."""
    s, speed = _progress(len(pose.trunk), 1.5, rng)
    _seat(pose, rng, down=_smooth((s - 0.1) / 0.75), lean=np.sin(np.pi * np.clip(s / 0.9, 0, 1)))
    return speed


def _stand_up(pose: _Pose, rng: np.random.Generator, body: Body) -> float:
    """From the chair: lean forward first, then extend hips and knees (not just sit_down played backwards)."""
    s, speed = _progress(len(pose.trunk), 1.4, rng)
    _seat(pose, rng, down=1 - _smooth((s - 0.3) / 0.6), lean=np.sin(np.pi * np.clip(s / 0.8, 0, 1)))
    return speed


def _seat(pose: _Pose, rng: np.random.Generator, down: np.ndarray, lean: np.ndarray) -> None:
    """Shared by sit_down/stand_up. down: 0 standing .. 1 seated; lean: 0 .. 1 extra forward lean (T,)."""
    thigh, knee = rng.uniform(80, 95), rng.uniform(85, 100)
    pose.hip = _blend(pose.hip, thigh, down[:, None])
    pose.knee = _blend(pose.knee, knee, down[:, None])
    pose.trunk = pose.trunk + rng.uniform(25, 40) * lean + rng.uniform(3, 10) * down
    # hands go forward for balance during the lean, then rest on the thighs when seated
    arms = down[:, None] * rng.uniform(0.5, 1.0)  # (T, 1): some people keep their arms where they were
    pose.sh_flex = _blend(pose.sh_flex, rng.uniform(15, 30), arms) + rng.uniform(10, 30) * lean[:, None]
    pose.fa_flex = _blend(pose.fa_flex, rng.uniform(55, 80), arms)
    pose.fa_abd = _blend(pose.fa_abd, -10.0, arms)


def _pick_up(pose: _Pose, rng: np.random.Generator, body: Body) -> float:
    """Bend down (stooping or squatting), reach to the floor with one or both hands, stand up holding it."""
    s, speed = _progress(len(pose.trunk), 1.8, rng)
    bend = _window(s, 0.05, 0.42, 0.55, 0.92)  # (T,)
    squat = rng.uniform()  # 0 = stoop (straight legs, deep trunk lean) .. 1 = squat
    pose.trunk = pose.trunk + (78 - 38 * squat) * bend
    pose.hip = pose.hip + ((8 + 62 * squat) * bend)[:, None]
    pose.knee = pose.knee + ((15 + 95 * squat) * bend)[:, None]
    pose.head_pitch = pose.head_pitch + 20 * bend
    hands = [[0], [1], [0, 1]][rng.choice(3, p=[0.4, 0.4, 0.2])]
    hold = _smooth((s - 0.6) / 0.35)  # (T,) carrying the object at waist height afterwards
    for h in hands:
        pose.sh_flex[:, h] = _blend(pose.sh_flex[:, h], rng.uniform(10, 30), bend) + 15 * hold
        pose.sh_abd[:, h] = _blend(pose.sh_abd[:, h], 0.0, bend)
        pose.fa_flex[:, h] = _blend(_blend(pose.fa_flex[:, h], 15.0, bend), rng.uniform(50, 80), hold)
    pose.free_arms = [a for a in (0, 1) if a not in hands]
    return speed


def _wave(pose: _Pose, rng: np.random.Generator, body: Body) -> float:
    """Raise one arm to the side, forearm up, wave it side to side 2-3 times per second, lower it."""
    s, speed = _progress(len(pose.trunk), 1.6, rng)
    up = _window(s, 0.0, 0.2, 0.8, 1.0)  # (T,)
    h = int(rng.integers(2))
    t = np.arange(len(s)) / FPS
    wag = rng.uniform(15, 35) * np.sin(2 * np.pi * rng.uniform(2.0, 3.0) * speed * t + rng.uniform(0, 6.3))
    pose.sh_flex[:, h] = _blend(pose.sh_flex[:, h], rng.uniform(10, 50), up)
    pose.sh_abd[:, h] = _blend(pose.sh_abd[:, h], rng.uniform(50, 85), up)
    pose.fa_flex[:, h] = _blend(pose.fa_flex[:, h], rng.uniform(150, 175), up)
    pose.fa_abd[:, h] = _blend(pose.fa_abd[:, h], wag, _window(s, 0.15, 0.25, 0.75, 0.85))
    pose.free_arms = [1 - h]
    return speed


def _drink(pose: _Pose, rng: np.random.Generator, body: Body) -> float:
    """Bring a cup from waist height to the mouth, tilt the head back, sip, and lower it again."""
    s, speed = _progress(len(pose.trunk), 1.9, rng)
    lift = _window(s, 0.05, 0.35, 0.65, 0.95)  # (T,)
    sip = _window(s, 0.3, 0.4, 0.6, 0.7)
    h = int(rng.integers(2))
    pose.sh_flex[:, h] = _blend(np.full(len(s), rng.uniform(5, 15)), rng.uniform(30, 50), lift)
    pose.sh_abd[:, h] = _blend(pose.sh_abd[:, h], rng.uniform(5, 20), lift)
    pose.fa_flex[:, h] = _blend(np.full(len(s), rng.uniform(60, 85)), rng.uniform(155, 170), lift)
    pose.fa_abd[:, h] = _blend(pose.fa_abd[:, h], rng.uniform(-45, -30), lift)
    pose.head_pitch = pose.head_pitch - rng.uniform(10, 25) * sip
    pose.head_yaw = pose.head_yaw * (1 - lift)  # looking straight ahead while drinking
    pose.free_arms = [1 - h]
    return speed


def _kick(pose: _Pose, rng: np.random.Generator, body: Body) -> float:
    """Wind one leg back with the knee bent, swing it forward and up with the knee straight, put it down."""
    s, speed = _progress(len(pose.trunk), 1.1, rng)
    back = _window(s, 0.05, 0.3, 0.3, 0.5)  # (T,)
    kick = _window(s, 0.3, 0.5, 0.55, 0.9)
    leg = int(rng.integers(2))
    pose.hip[:, leg] = pose.hip[:, leg] - 20 * back + rng.uniform(45, 80) * kick
    pose.knee[:, leg] = pose.knee[:, leg] + 75 * _window(s, 0.05, 0.3, 0.38, 0.52)
    pose.trunk = pose.trunk - rng.uniform(5, 15) * kick
    pose.sh_abd = pose.sh_abd + rng.uniform(10, 30) * kick[:, None]  # arms out for balance
    pose.sh_flex[:, leg] = pose.sh_flex[:, leg] - 15 * kick  # the same-side arm swings back
    return speed


_ACTION_FN = {
    "pick_up": _pick_up,
    "carry": lambda pose, rng, body: _walk(pose, rng, body, carry=True),
    "sit_down": _sit_down,
    "stand_up": _stand_up,
    "wave": _wave,
    "walk": _walk,
    "drink": _drink,
    "kick": _kick,
}
assert set(_ACTION_FN) == set(ACTIONS)


# ----------------------------------------------------------------------------------------------------------
# forward kinematics, scene, camera
# ----------------------------------------------------------------------------------------------------------


def _direction(flex: np.ndarray, abd: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Unit limb direction (..., 3) in the body frame from spherical angles in degrees (flex 0 = down)."""
    f, a = np.deg2rad(flex), np.deg2rad(abd)
    return np.stack([np.sin(f) * np.cos(a), side * np.sin(a), -np.cos(f) * np.cos(a)], axis=-1)


def _up(pitch: np.ndarray) -> np.ndarray:
    """(T, 3) the vertical leaned forward by pitch degrees."""
    p = np.deg2rad(pitch)
    return np.stack([np.sin(p), np.zeros_like(p), np.cos(p)], axis=-1)


def _rot_y(pitch: np.ndarray) -> np.ndarray:
    """(T, 3, 3) forward lean by pitch degrees: up (0,0,1) -> (sin, 0, cos)."""
    p = np.deg2rad(pitch)
    c, s, z, o = np.cos(p), np.sin(p), np.zeros_like(p), np.ones_like(p)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def _rot_z(yaw: np.ndarray) -> np.ndarray:
    """(..., 3, 3) turn to the left by yaw degrees."""
    y = np.deg2rad(yaw)
    c, s, z, o = np.cos(y), np.sin(y), np.zeros_like(y), np.ones_like(y)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def _forward_kinematics(pose: _Pose, body: Body) -> np.ndarray:
    """Joint positions (T, 17, 3) in the body frame, root under the pelvis, feet on the floor (z = 0)."""
    n = len(pose.trunk)
    left = np.array([0.0, 1.0, 0.0])
    spine = _up(pose.trunk)  # (T, 3)
    neck = body.torso * spine  # (T, 3)
    shoulders = neck[:, None] + _SIDE[:, None] * body.shoulder_half * left  # (T, 2, 3)
    hips = np.zeros((n, 1, 3)) + _SIDE[:, None] * body.hip_half * left  # (T, 2, 3)

    elbows = shoulders + body.upper_arm * _direction(pose.sh_flex, pose.sh_abd, _SIDE)
    wrists = elbows + body.forearm * _direction(pose.fa_flex, pose.fa_abd, _SIDE)
    knees = hips + body.thigh * _direction(pose.hip, pose.hip_abd, _SIDE)
    ankles = knees + body.shin * _direction(pose.hip - pose.knee, pose.hip_abd, _SIDE)

    head_pitch = pose.trunk + pose.head_pitch
    head_centre = neck + body.neck * _up(pose.trunk + pose.head_pitch / 2)  # the neck bends half the nod
    head_rot = _rot_z(pose.head_yaw) @ _rot_y(head_pitch)  # (T, 3, 3)
    face = head_centre[:, None] + body.head * np.einsum("tij,fj->tfi", head_rot, _FACE_OFFSETS)  # (T, 5, 3)

    joints = np.empty((n, 17, 3))
    joints[:, _FACE] = face
    joints[:, [_J["left_shoulder"], _J["right_shoulder"]]] = shoulders
    joints[:, [_J["left_elbow"], _J["right_elbow"]]] = elbows
    joints[:, [_J["left_wrist"], _J["right_wrist"]]] = wrists
    joints[:, [_J["left_hip"], _J["right_hip"]]] = hips
    joints[:, [_J["left_knee"], _J["right_knee"]]] = knees
    joints[:, [_J["left_ankle"], _J["right_ankle"]]] = ankles
    return _ground(joints, ankles, pose, body)


def _ground(joints: np.ndarray, ankles: np.ndarray, pose: _Pose, body: Body) -> np.ndarray:
    """Put the lower foot on the floor and, unless walking, keep the supporting foot where it is."""
    joints = joints.copy()
    joints[..., 2] += body.ankle - ankles[..., 2].min(axis=1)[:, None]  # (T, 17)
    if pose.anchor_feet:
        # weight each foot by how close it is to the floor: both when standing, the stance foot when kicking
        w = np.exp(-(ankles[..., 2] - ankles[..., 2].min(axis=1, keepdims=True)) / 0.02)  # (T, 2)
        anchor = (w[..., None] * ankles[..., :2]).sum(1) / w.sum(1, keepdims=True)  # (T, 2)
        joints[..., :2] -= anchor[:, None]
    joints[..., 0] += pose.fwd[:, None]
    joints[..., 1] += pose.lat[:, None]
    return joints


@dataclass(frozen=True)
class _Camera:
    position: np.ndarray  # (3,) world
    rotation: np.ndarray  # (3, 3) rows: image right, image down, viewing direction

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates (..., 2) and depth (...) of world points (..., 3)."""
        cam = (points - self.position) @ self.rotation.T
        depth = cam[..., 2]
        uv = FOCAL_PX * cam[..., :2] / depth[..., None] + np.array([IMG_W / 2, IMG_H / 2])
        return uv, depth


def _make_camera(cam_id: int, rng: np.random.Generator) -> _Camera:
    az, el, dist = np.array(CAMERAS[cam_id - 1]) + rng.normal(0, [3.0, 1.5, 0.2])
    a, e = np.deg2rad(az), np.deg2rad(el)
    position = CAMERA_TARGET + dist * np.array([np.sin(a) * np.cos(e), -np.cos(a) * np.cos(e), np.sin(e)])
    view = (CAMERA_TARGET - position) / dist
    right = np.cross(view, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(view, right)
    return _Camera(position=position, rotation=np.stack([right, down, view]))


def _place(joints: np.ndarray, heading: float, origin: np.ndarray) -> np.ndarray:
    """Body-frame joints (T, 17, 3) to world coordinates: turn by heading (deg), move to origin (3,)."""
    return joints @ _rot_z(np.asarray(heading)).T + origin


def _scene(action: str, rng: np.random.Generator) -> tuple[float, np.ndarray]:
    """Heading (deg) and floor position of the main person: walkers cross the room, others face the room."""
    if action in ("walk", "carry"):
        heading = rng.choice([0.0, 180.0]) + rng.uniform(-30, 30)
        origin = np.array([rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.6), 0.0])
    else:
        heading = -90.0 + rng.uniform(-40, 40)
        origin = np.array([rng.uniform(-0.8, 0.8), rng.uniform(-0.5, 0.8), 0.0])
    return float(heading), origin


# ----------------------------------------------------------------------------------------------------------
# one clip
# ----------------------------------------------------------------------------------------------------------


def _make_clip(
    clip: _Clip, body: Body, rng: np.random.Generator, n_frames: tuple[int, int], noise: NoiseConfig
) -> tuple[list[dict], dict]:
    """The detections of one clip (sorted by frame, then track) and its manifest columns."""
    n = int(rng.integers(n_frames[0], n_frames[1] + 1))
    pose = _idle_pose(n, rng)
    speed = _ACTION_FN[clip.action](pose, rng, body)
    _apply_arm_style(pose, rng)
    heading, origin = _scene(clip.action, rng)
    cam_id = int(rng.integers(1, len(CAMERAS) + 1))
    camera = _make_camera(cam_id, rng)

    world = _place(_forward_kinematics(pose, body), heading, origin)  # (T, 17, 3)
    main = _detect(world, heading, body, camera, rng, noise)  # (T, 17, 3) x, y, score
    tracks = [(0, main, np.ones(n, bool))]
    if rng.uniform() < noise.p_bystander:
        tracks.append((1, *_bystander(n, origin, camera, rng, noise)))
    seen = _detected_frames(n, rng, noise)
    detections = [
        _detection(t, track_id, kps[t])
        for t in np.flatnonzero(seen)
        for track_id, kps, present in tracks
        if present[t]
    ]
    return detections, {"camera": cam_id, "speed": round(speed, 2), "n_frames": n}


def _bystander(
    n: int, actor_at: np.ndarray, camera: _Camera, rng: np.random.Generator, noise: NoiseConfig
) -> tuple[np.ndarray, np.ndarray]:
    """A second person behind the actor (seen from the camera), standing or strolling across the view.

    Returns keypoints (T, 17, 3) and where it is detected (T,): one stretch of 30-100% of the clip, and only
    while it is inside the image.
    """
    body = _sample_body(rng)
    pose = _idle_pose(n, rng)
    view = camera.rotation[2, :2] / np.linalg.norm(
        camera.rotation[2, :2]
    )  # (2,) horizontal viewing direction
    view_yaw = float(np.degrees(np.arctan2(view[1], view[0])))
    if rng.uniform() < 0.5:
        _walk(pose, rng, body)
        heading = view_yaw + rng.choice([-90.0, 90.0]) + rng.uniform(-20, 20)
    else:
        heading = view_yaw + 180.0 + rng.uniform(-40, 40)
    _apply_arm_style(pose, rng)
    across = np.array([-view[1], view[0]])
    spot = actor_at[:2] + view * rng.uniform(1.8, 3.2) + across * rng.uniform(-1.5, 1.5)
    world = _place(_forward_kinematics(pose, body), float(heading), np.array([*spot, 0.0]))
    uv, _ = camera.project(world)  # (T, 17, 2)
    inside = ((uv >= 0) & (uv <= [IMG_W - 1, IMG_H - 1])).all(-1).mean(-1) > 0.8  # (T,)
    kps = _detect(world, float(heading), body, camera, rng, noise, score_scale=0.85)
    length = int(rng.integers(max(2, int(0.3 * n)), n + 1))
    start = int(rng.integers(0, n - length + 1))
    present = np.zeros(n, bool)
    present[start : start + length] = True
    return kps, present & inside


def _detected_frames(n: int, rng: np.random.Generator, noise: NoiseConfig) -> np.ndarray:
    """(T,) bool: False in 1-3 short runs of missed frames (some clips only); first and last always seen."""
    seen = np.ones(n, bool)
    if rng.uniform() < noise.p_clip_missed_frames:
        for _ in range(int(rng.integers(1, 4))):
            start = int(rng.integers(1, n - 1))
            seen[start : min(start + int(rng.integers(1, 4)), n - 1)] = False
    return seen


def _detect(
    world: np.ndarray,
    heading: float,
    body: Body,
    camera: _Camera,
    rng: np.random.Generator,
    noise: NoiseConfig,
    score_scale: float = 1.0,
) -> np.ndarray:
    """Simulated detector output (T, 17, 3): jittered pixels and scores, missed joints as score<0.05 or zeros."""
    uv, depth = camera.project(world)  # (T, 17, 2), (T, 17)
    n = len(uv)
    px_height = FOCAL_PX * body.height / np.median(depth, axis=1)  # (T,) body size in pixels
    occl = _self_occlusion(heading, camera)  # (17,) 0 visible .. 1 hidden behind the body
    sigma = px_height[:, None] * _JITTER * (1 + 1.5 * occl) * noise.jitter  # (T, 17)
    z = rng.normal(size=(n, 17, 2))
    uv = uv + sigma[..., None] * z
    err = np.linalg.norm(z, axis=-1) * (noise.jitter > 0)  # (T, 17) how far off, in sigmas
    score = _BASE_SCORE - 0.05 * err - 0.35 * occl + rng.normal(0, 0.025, (n, 17))
    score = np.clip(score * score_scale, 0.3, 0.99)

    outside = (uv[..., 0] < 0) | (uv[..., 0] > IMG_W - 1) | (uv[..., 1] < 0) | (uv[..., 1] > IMG_H - 1)
    uv = np.stack([np.clip(uv[..., 0], 0, IMG_W - 1), np.clip(uv[..., 1], 0, IMG_H - 1)], -1)
    score = np.where(outside, score * 0.3, score)

    _swap_left_right(uv, rng.uniform(size=n) < noise.p_swap, rng)

    missed = rng.uniform(size=(n, 17)) < noise.p_joint_missed * (1 + occl)
    zeroed = missed & (rng.uniform(size=(n, 17)) < 0.5)
    score = np.where(missed, rng.uniform(0.0, 0.049, (n, 17)), score)
    out = np.concatenate([uv, score[..., None]], axis=-1)
    out[zeroed] = 0.0
    return out


def _swap_left_right(uv: np.ndarray, frames: np.ndarray, rng: np.random.Generator) -> None:
    """In the given frames (T,) bool, exchange the left and right joint of one random arm or leg pair."""
    t = np.flatnonzero(frames)
    pairs = _LIMB_JOINTS[rng.integers(0, 4, len(t))]  # (n_swaps, 2): elbows, wrists, knees or ankles
    uv[t, pairs[:, 0]], uv[t, pairs[:, 1]] = uv[t, pairs[:, 1]], uv[t, pairs[:, 0]]  # fancy indexing copies


def _self_occlusion(heading: float, camera: _Camera) -> np.ndarray:
    """(17,) how hidden each joint is: limbs on the side turned away from the camera, the face seen from behind."""
    h = np.deg2rad(heading)
    fwd, left = np.array([np.cos(h), np.sin(h)]), np.array([-np.sin(h), np.cos(h)])
    to_cam = -camera.rotation[2, :2] / np.linalg.norm(
        camera.rotation[2, :2]
    )  # horizontal, towards the camera
    side_away = np.clip((np.array([-1.0, 1.0]) * (left @ to_cam) - 0.3) / 0.7, 0, 1)  # (2,) left, right
    occl = np.zeros(17)
    occl[_LIMB_JOINTS] = _LIMB_OCCLUSION[:, None] * side_away
    occl[_FACE] = np.clip((-(fwd @ to_cam) - 0.2) / 0.8, 0, 1) * 0.8
    return occl


def _detection(t: int, track_id: int, kps: np.ndarray) -> dict:
    """One COCO keypoint result; the box score follows the mean keypoint confidence."""
    visible = kps[:, 2] >= 0.05
    det_score = 0.35 + 0.65 * float(kps[visible, 2].mean()) if visible.any() else 0.3
    # 0.1 px is far below the jitter; scores keep 2 decimals (the 0.05 "missed" threshold must survive)
    rounded = np.concatenate([np.round(kps[:, :2], 1), np.round(kps[:, 2:], 2)], axis=1)  # (17, 3)
    return {
        "image_id": int(t),
        "category_id": 1,
        "keypoints": rounded.ravel().tolist(),
        "score": round(det_score, 2),
        "track_id": track_id,
    }


# ----------------------------------------------------------------------------------------------------------
# files
# ----------------------------------------------------------------------------------------------------------


def _write_results(path: Path, detections: list[dict]) -> None:
    """A JSON list, one detection per line, keys sorted, floats already rounded: byte-stable across runs."""
    lines = [json.dumps(d, sort_keys=True, separators=(",", ":")) for d in detections]
    path.write_bytes(("[\n" + ",\n".join(lines) + "\n]\n").encode())


def _write_manifest(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _readme(
    summary: DemoSummary, n_subjects: int, reps: int, seed: int, n_frames: tuple[int, int], noise: NoiseConfig
) -> str:
    test = held_out_subjects(n_subjects)
    noise_lines = "\n".join(f"- `{f.name}` = {getattr(noise, f.name)}" for f in fields(noise))
    return f"""# actrec demo data: SYNTHETIC, not real recordings

Generated by `actrec-etl demo-data` (`etl/commands/demo_data.py`) with seed {seed}: {n_subjects} subjects x
{len(ACTIONS)} actions x {reps} repetitions = {summary.n_clips} clips. The same seed and arguments give
byte-identical files. No real person, video or dataset was used: every skeleton is a simulated stick figure.

## Classes

{", ".join(f"`{a}`" for a in sorted(ACTIONS))}: the label order of a store ingested from these files (the
manifest gives names only, and ingest numbers names alphabetically: label 0 = `{sorted(ACTIONS)[0]}`).

## How a clip is made

1. A 3D stick figure per subject: height 1.52-1.92 m and a few per cent of variation in leg, arm and torso
   length, shoulder and hip width.
2. The action as joint-angle trajectories over normalised time, with per-clip amplitude, tempo (the `speed`
   column, 1.0 = nominal, 0.7-1.3; up to ~1.6 where a long action had to fit a short clip), start offset, phase and side (hand that waves, drinks or picks up;
   leg that kicks), plus idle sway, head turns and everyday arm postures (hanging, holding a phone, hand on
   hip, hands behind the back) on the arms the action leaves free. `walk` and `carry` cross the room; the
   others stay in place with the feet planted.
3. A perspective camera at one of {len(CAMERAS)} positions (`camera` column; azimuth -60..60 deg, elevation
   10-22 deg, 4.8-5.8 m away), focal length {FOCAL_PX:.0f} px, image {IMG_H}x{IMG_W} ({FPS:.0f} fps timing).
4. A simulated detector: per-joint jitter proportional to the body's pixel height (larger for wrists and
   ankles), confidences ~0.6-0.98, lower for joints on the side turned away from the camera, missed joints,
   missed frames and sometimes a bystander in the background. Settings:

{noise_lines}

## Files

- `clips/<clip_id>.json`: COCO keypoint-detection results of one clip, a JSON list of
  `{{"category_id": 1, "image_id": <frame index>, "keypoints": [x, y, score] * 17, "score": <box score>,
  "track_id": <person>}}` in COCO-17 joint order. `track_id` 0 is the actor, 1 a bystander. Frames where
  nobody was detected have no entry (never the first or the last frame). A missed joint has score < 0.05 or
  is written as `0, 0, 0`.
- `clips.csv`: one row per clip: `{",".join(MANIFEST_COLUMNS)}`. `n_frames` is the true frame count
  ({n_frames[0]}-{n_frames[1]}).

## Split

By subject: test = subjects {", ".join(map(str, test))}, train = the others
({summary.counts["train"]} train clips, {summary.counts["test"]} test clips). No subject is in both.
"""
