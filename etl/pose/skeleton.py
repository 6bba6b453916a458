"""Skeleton layouts: joint names, limbs and their left/right mirror pairs, one definition per layout.

Left/right pairs are written out per layout (checked against the names by `tests/test_skeleton.py`), because a
flip must swap exactly the channels the layout says, nothing inferred at run time. Layouts that are not built in
(`--layout from-file`, a layout YAML: etl/pose/layout_file.py) are checked and stored by etl/pose/layout_def.py.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property

from etl.common.errors import ActrecError

CHANNEL_PRESETS = ("joints", "limbs", "joints+limbs")


@dataclass(frozen=True)
class Layout:
    name: str
    joints: tuple[str, ...]
    limbs: tuple[tuple[int, int], ...]  # (joint a, joint b) per limb, in channel order
    left_right_joints: tuple[tuple[int, int], ...]  # (left joint, right joint)
    left_right_limbs: tuple[tuple[int, int], ...]  # (left limb, right limb)
    description: str = ""
    family: str = ""  # who writes this layout: "openpose", "coco" (COCO-style estimators), "kinect", ...
    # (joint, another name some tool gives it): accepted when a file names its joints, e.g. MMPose's 'head' for
    # JHMDB's 'face'; the joint keeps its own name in the store
    aliases: tuple[tuple[str, str], ...] = ()
    # the joint a graph network's skeleton graph is rooted at (train/models/graph.py): PYSKL's choice where it has the
    # layout (coco: nose, openpose: neck, ntu: spine_shoulder), its nearest equivalent elsewhere; a layout file's
    # `center` (or none: "")
    center: str = ""

    @property
    def n_joints(self) -> int:
        return len(self.joints)

    def names_of(self, joint: str) -> tuple[str, ...]:
        """The joint's name followed by its aliases."""
        return (joint, *(alias for name, alias in self.aliases if name == joint))

    @property
    def definition(self) -> dict | None:
        """None for a built-in layout (stores and checkpoints name it only); else what etl.pose.layout_def reads
        back: joint names, limbs and left/right pairs as [name, name], the center joint."""
        if LAYOUTS.get(self.name) == self:
            return None
        return {
            "name": self.name,
            "joints": list(self.joints),
            "limbs": [[self.joints[a], self.joints[b]] for a, b in self.limbs],
            "left_right_joints": [[self.joints[a], self.joints[b]] for a, b in self.left_right_joints],
            "center": self.center or None,
            "description": self.description,
        }

    @property
    def limb_names(self) -> tuple[str, ...]:
        return tuple(f"{self.joints[a]}-{self.joints[b]}" for a, b in self.limbs)

    @cached_property
    def joint_flip(self) -> tuple[int, ...]:
        """joint_flip[v] = the joint that v becomes when the image is mirrored."""
        return _permutation(self.n_joints, self.left_right_joints)

    @cached_property
    def limb_flip(self) -> tuple[int, ...]:
        return _permutation(len(self.limbs), self.left_right_limbs)

    def channel_names(self, preset: str) -> list[str]:
        """Channel order of a heatmap preset: joints first, then limbs (joints+limbs)."""
        _check_preset(preset)
        names: list[str] = []
        if preset in ("joints", "joints+limbs"):
            names += [f"joint:{n}" for n in self.joints]
        if preset in ("limbs", "joints+limbs"):
            names += [f"limb:{n}" for n in self.limb_names]
        if not names:  # a layout taken from a file without edges: joint channels are all it has
            raise ActrecError(
                f"layout {self.name!r} has no limbs to draw: use channels joints or joints+limbs"
            )
        return names

    def channel_flip(self, preset: str) -> list[int]:
        """Permutation p such that flipped[..., c, :, :] = mirrored(original[..., p[c], :, :])."""
        _check_preset(preset)
        perm: list[int] = []
        if preset in ("joints", "joints+limbs"):
            perm += list(self.joint_flip)
        if preset in ("limbs", "joints+limbs"):
            offset = len(perm)
            perm += [offset + i for i in self.limb_flip]
        return perm


def _permutation(n: int, pairs: tuple[tuple[int, int], ...]) -> tuple[int, ...]:
    perm = list(range(n))
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return tuple(perm)


def _check_preset(preset: str) -> None:
    if preset not in CHANNEL_PRESETS:
        raise ActrecError(f"unknown channel preset {preset!r}; choose one of {', '.join(CHANNEL_PRESETS)}")


# fmt: off
# --- COCO-17: the PoseC3D default. Limb order and mirror pairs as in the PoseC3D *-limb configs. ---
COCO17 = Layout(
    name="coco17",
    center="nose",
    joints=("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
            "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
            "right_knee", "left_ankle", "right_ankle"),
    limbs=((0, 5), (0, 6), (5, 7), (7, 9), (6, 8), (8, 10), (5, 11), (11, 13), (13, 15), (6, 12), (12, 14),
           (14, 16), (0, 1), (0, 2), (1, 3), (2, 4), (11, 12)),
    left_right_joints=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    left_right_limbs=((0, 1), (2, 4), (3, 5), (6, 9), (7, 10), (8, 11), (12, 13), (14, 15)),
    description="COCO keypoints (HRNet, RTMPose, ViTPose, Detectron2 output); PoseC3D default",
    family="coco",
)

# --- Penn Action: 13 joints, 14 limbs, 27 channels for joints+limbs (the original model's input). ---
PENN13 = Layout(
    name="penn13",
    center="head",
    joints=("head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
            "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle"),
    limbs=((0, 1), (0, 2), (1, 2), (1, 3), (3, 5), (2, 4), (4, 6), (1, 7), (2, 8), (7, 8), (7, 9), (9, 11),
           (8, 10), (10, 12)),
    left_right_joints=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12)),
    left_right_limbs=((0, 1), (3, 5), (4, 6), (7, 8), (10, 12), (11, 13)),
    description="Penn Action annotations: head, shoulders, elbows, wrists, hips, knees, ankles",
    family="dataset",
)

# --- OpenPose COCO-18 (neck added, different order from COCO-17). ---
OPENPOSE18 = Layout(
    name="openpose18",
    center="neck",
    joints=("nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
            "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
            "right_eye", "left_eye", "right_ear", "left_ear"),
    limbs=((1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12),
           (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17)),
    left_right_joints=((5, 2), (6, 3), (7, 4), (11, 8), (12, 9), (13, 10), (15, 14), (17, 16)),
    left_right_limbs=((1, 0), (4, 2), (5, 3), (9, 6), (10, 7), (11, 8), (15, 13), (16, 14)),
    description="OpenPose COCO-18 model output (pose_keypoints_2d with 18 joints)",
    family="openpose",
)

# --- OpenPose BODY_25. ---
BODY25 = Layout(
    name="body25",
    center="neck",
    joints=("nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
            "left_wrist", "mid_hip", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee",
            "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear", "left_big_toe", "left_small_toe",
            "left_heel", "right_big_toe", "right_small_toe", "right_heel"),
    limbs=((1, 8), (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (8, 9), (9, 10), (10, 11), (8, 12),
           (12, 13), (13, 14), (1, 0), (0, 15), (15, 17), (0, 16), (16, 18), (14, 19), (19, 20), (14, 21),
           (11, 22), (22, 23), (11, 24)),
    left_right_joints=((5, 2), (6, 3), (7, 4), (12, 9), (13, 10), (14, 11), (16, 15), (18, 17), (19, 22),
                       (20, 23), (21, 24)),
    left_right_limbs=((2, 1), (5, 3), (6, 4), (10, 7), (11, 8), (12, 9), (16, 14), (17, 15), (18, 21),
                      (19, 22), (20, 23)),
    description="OpenPose BODY_25 model output (pose_keypoints_2d with 25 joints)",
    family="openpose",
)

# --- Kinect v2 / NTU RGB+D 25 joints (0-based from the 1-based NTU list). ---
NTU25 = Layout(
    name="ntu25",
    center="spine_shoulder",
    joints=("spine_base", "spine_mid", "neck", "head", "left_shoulder", "left_elbow", "left_wrist", "left_hand",
            "right_shoulder", "right_elbow", "right_wrist", "right_hand", "left_hip", "left_knee", "left_ankle",
            "left_foot", "right_hip", "right_knee", "right_ankle", "right_foot", "spine_shoulder",
            "left_hand_tip", "left_thumb", "right_hand_tip", "right_thumb"),
    limbs=((0, 1), (1, 20), (2, 20), (3, 2), (4, 20), (5, 4), (6, 5), (7, 6), (8, 20), (9, 8), (10, 9),
           (11, 10), (12, 0), (13, 12), (14, 13), (15, 14), (16, 0), (17, 16), (18, 17), (19, 18), (21, 7),
           (22, 7), (23, 11), (24, 11)),
    left_right_joints=((4, 8), (5, 9), (6, 10), (7, 11), (12, 16), (13, 17), (14, 18), (15, 19), (21, 23),
                       (22, 24)),
    left_right_limbs=((4, 8), (5, 9), (6, 10), (7, 11), (12, 16), (13, 17), (14, 18), (15, 19), (20, 22),
                      (21, 23)),
    description="Kinect v2 skeleton as in NTU RGB+D 60/120",
    family="kinect",
)

# --- Kinect v1, 20 joints, in the UTD-MHAD order (NW-UCLA uses another order). ---
KINECT20 = Layout(
    name="kinect20",
    center="shoulder_center",
    joints=("head", "shoulder_center", "spine", "hip_center", "left_shoulder", "left_elbow", "left_wrist",
            "left_hand", "right_shoulder", "right_elbow", "right_wrist", "right_hand", "left_hip", "left_knee",
            "left_ankle", "left_foot", "right_hip", "right_knee", "right_ankle", "right_foot"),
    limbs=((0, 1), (1, 2), (2, 3), (1, 4), (4, 5), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (10, 11), (3, 12),
           (12, 13), (13, 14), (14, 15), (3, 16), (16, 17), (17, 18), (18, 19)),
    left_right_joints=((4, 8), (5, 9), (6, 10), (7, 11), (12, 16), (13, 17), (14, 18), (15, 19)),
    left_right_limbs=((3, 7), (4, 8), (5, 9), (6, 10), (11, 15), (12, 16), (13, 17), (14, 18)),
    description="Kinect v1 skeleton in the UTD-MHAD joint order",
    family="kinect",
)

# --- JHMDB puppet, 15 joints. ---
JHMDB15 = Layout(
    name="jhmdb15",
    center="neck",
    joints=("neck", "belly", "face", "right_shoulder", "left_shoulder", "right_hip", "left_hip", "right_elbow",
            "left_elbow", "right_knee", "left_knee", "right_wrist", "left_wrist", "right_ankle", "left_ankle"),
    limbs=((2, 0), (0, 1), (0, 3), (0, 4), (3, 7), (7, 11), (4, 8), (8, 12), (1, 5), (1, 6), (5, 9), (9, 13),
           (6, 10), (10, 14)),
    left_right_joints=((4, 3), (6, 5), (8, 7), (10, 9), (12, 11), (14, 13)),
    left_right_limbs=((3, 2), (6, 4), (7, 5), (9, 8), (12, 10), (13, 11)),
    description="JHMDB puppet joints (as in the DD-Net pickles)",
    aliases=(("face", "head"),),  # MMPose's jhmdb dataset meta calls the face joint 'head'
    family="dataset",
)

# --- MediaPipe Pose / BlazePose, 33 landmarks and its POSE_CONNECTIONS. ---
MEDIAPIPE33 = Layout(
    name="mediapipe33",
    center="nose",
    joints=("nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
            "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
            "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
            "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip", "right_hip",
            "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel", "right_heel",
            "left_foot_index", "right_foot_index"),
    limbs=((0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10), (11, 12), (11, 13),
           (13, 15), (15, 17), (15, 19), (15, 21), (17, 19), (12, 14), (14, 16), (16, 18), (16, 20), (16, 22),
           (18, 20), (11, 23), (12, 24), (23, 24), (23, 25), (24, 26), (25, 27), (26, 28), (27, 29), (28, 30),
           (29, 31), (30, 32), (27, 31), (28, 32)),
    left_right_joints=((1, 4), (2, 5), (3, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16), (17, 18),
                       (19, 20), (21, 22), (23, 24), (25, 26), (27, 28), (29, 30), (31, 32)),
    left_right_limbs=((0, 4), (1, 5), (2, 6), (3, 7), (10, 16), (11, 17), (12, 18), (13, 19), (14, 20),
                      (15, 21), (22, 23), (25, 26), (27, 28), (29, 30), (31, 32), (33, 34)),
    description="MediaPipe Pose (BlazePose) 33 landmarks",
    family="mediapipe",
)

# --- Layouts below give their limb mirror pairs through `_mirrored_limbs`: every limb's mirror is the limb between
# the mirrored joints, computed once at import from the written-out joint pairs (and checked by the tests). ---


def _mirrored_limbs(
    limbs: tuple[tuple[int, int], ...], left_right_joints: tuple[tuple[int, int], ...]
) -> tuple[tuple[int, int], ...]:
    flip = _permutation(1 + max(max(pair) for pair in limbs), left_right_joints)
    index = {frozenset(limb): i for i, limb in enumerate(limbs)}
    pairs = []
    for i, (a, b) in enumerate(limbs):
        j = index[frozenset((flip[a], flip[b]))]
        if i < j:  # (the limb first in channel order, its mirror); a limb on the midline mirrors onto itself
            left_first = any(a == left or b == left for left, _ in left_right_joints)
            pairs.append((i, j) if left_first else (j, i))
    return tuple(pairs)


# --- Halpe-26 (AlphaPose's default model): COCO-17, then head, neck, hip (mid-hip) and six foot points. ---
_HALPE26_LIMBS = ((0, 1), (0, 2), (1, 3), (2, 4), (5, 18), (6, 18), (5, 7), (7, 9), (6, 8), (8, 10), (17, 18),
                  (18, 19), (19, 11), (19, 12), (11, 13), (12, 14), (13, 15), (14, 16), (20, 24), (21, 25),
                  (23, 25), (22, 24), (15, 24), (16, 25))
_HALPE26_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16), (20, 21), (22, 23),
                  (24, 25))
HALPE26 = Layout(
    name="halpe26",
    center="nose",
    joints=(*COCO17.joints, "head", "neck", "mid_hip", "left_big_toe", "right_big_toe", "left_small_toe",
            "right_small_toe", "left_heel", "right_heel"),
    limbs=_HALPE26_LIMBS,
    left_right_joints=_HALPE26_PAIRS,
    left_right_limbs=_mirrored_limbs(_HALPE26_LIMBS, _HALPE26_PAIRS),
    description="Halpe full-body 26 keypoints (AlphaPose; Halpe's 'hip' is the mid-hip point)",
    family="coco",
)

# --- CrowdPose-14: twelve limb joints, then head (top) and neck. ---
_CROWDPOSE14_LIMBS = ((12, 13), (13, 0), (13, 1), (0, 2), (2, 4), (1, 3), (3, 5), (0, 6), (1, 7), (6, 7),
                      (6, 8), (8, 10), (7, 9), (9, 11))
_CROWDPOSE14_PAIRS = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11))
CROWDPOSE14 = Layout(
    name="crowdpose14",
    center="neck",
    joints=(*COCO17.joints[5:], "head", "neck"),
    limbs=_CROWDPOSE14_LIMBS,
    left_right_joints=_CROWDPOSE14_PAIRS,
    left_right_limbs=_mirrored_limbs(_CROWDPOSE14_LIMBS, _CROWDPOSE14_PAIRS),
    description="CrowdPose 14 keypoints (AlphaPose/MMPose CrowdPose models)",
    family="coco",
)

# --- MPII-16 (MPII Human Pose; also the LSP-extended order of many older estimators). ---
_MPII16_LIMBS = ((0, 1), (1, 2), (2, 6), (3, 6), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9), (10, 11), (11, 12),
                 (12, 7), (13, 7), (13, 14), (14, 15))
_MPII16_PAIRS = ((5, 0), (4, 1), (3, 2), (15, 10), (14, 11), (13, 12))
MPII16 = Layout(
    name="mpii16",
    center="thorax",
    joints=("right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "pelvis", "thorax",
            "upper_neck", "head_top", "right_wrist", "right_elbow", "right_shoulder", "left_shoulder",
            "left_elbow", "left_wrist"),
    limbs=_MPII16_LIMBS,
    left_right_joints=_MPII16_PAIRS,
    left_right_limbs=_mirrored_limbs(_MPII16_LIMBS, _MPII16_PAIRS),
    description="MPII Human Pose 16 joints (r_ankle ... l_wrist)",
    family="mpii",
)

# --- Human3.6M-17 in the VideoPose3D / MMPose order (root = pelvis; H36M's 'foot' joints are the ankles). ---
_H36M17_LIMBS = ((0, 1), (1, 2), (2, 3), (0, 4), (4, 5), (5, 6), (0, 7), (7, 8), (8, 9), (9, 10), (8, 11),
                 (11, 12), (12, 13), (8, 14), (14, 15), (15, 16))
_H36M17_PAIRS = ((4, 1), (5, 2), (6, 3), (11, 14), (12, 15), (13, 16))
H36M17 = Layout(
    name="h36m17",
    center="thorax",
    joints=("pelvis", "right_hip", "right_knee", "right_foot", "left_hip", "left_knee", "left_foot", "spine",
            "thorax", "neck_base", "head", "left_shoulder", "left_elbow", "left_wrist", "right_shoulder",
            "right_elbow", "right_wrist"),
    limbs=_H36M17_LIMBS,
    left_right_joints=_H36M17_PAIRS,
    left_right_limbs=_mirrored_limbs(_H36M17_LIMBS, _H36M17_PAIRS),
    description="Human3.6M 17 joints as in VideoPose3D/MMPose (pelvis, right leg, left leg, spine, head, arms)",
    family="h36m",
)

# --- PoseTrack-17 (PoseTrack 2017/2018 annotations): COCO-17 with head_bottom/head_top where COCO has eyes. ---
_POSETRACK17_LIMBS = ((0, 1), (1, 2), (1, 3), (1, 4), (1, 5), (1, 6), (5, 7), (7, 9), (6, 8), (8, 10), (5, 11),
                      (6, 12), (11, 12), (11, 13), (13, 15), (12, 14), (14, 16))
_POSETRACK17_PAIRS = ((3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
POSETRACK17 = Layout(
    name="posetrack17",
    center="nose",
    joints=("nose", "head_bottom", "head_top", *COCO17.joints[3:]),
    limbs=_POSETRACK17_LIMBS,
    left_right_joints=_POSETRACK17_PAIRS,
    left_right_limbs=_mirrored_limbs(_POSETRACK17_LIMBS, _POSETRACK17_PAIRS),
    description="PoseTrack 2017/2018 keypoints (the ears are never annotated in PoseTrack)",
    family="coco",
)


# --- COCO-WholeBody-133: body (COCO-17), feet (6), face (68, iBUG order), left hand (21), right hand (21). ---
def _wholebody() -> Layout:
    feet = ("left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel")
    # iBUG-68 face points as (subject's right point, subject's left point) pairs; the others lie on the midline
    face_pairs = ((0, 16), (1, 15), (2, 14), (3, 13), (4, 12), (5, 11), (6, 10), (7, 9), (17, 26), (18, 25),
                  (19, 24), (20, 23), (21, 22), (31, 35), (32, 34), (36, 45), (37, 44), (38, 43), (39, 42),
                  (40, 47), (41, 46), (48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63),
                  (65, 67))
    face = [f"face_center_{i}" for i in range(68)]
    for k, (right, left) in enumerate(face_pairs):
        face[right], face[left] = f"face_right_{k}", f"face_left_{k}"
    fingers = ("thumb", "forefinger", "middle_finger", "ring_finger", "pinky_finger")
    hand = ["hand_root", *(f"{finger}{k}" for finger in fingers for k in range(1, 5))]
    joints = (*COCO17.joints, *feet, *face, *(f"left_{n}" for n in hand), *(f"right_{n}" for n in hand))
    body_limbs = (*COCO17.limbs, (15, 17), (15, 18), (15, 19), (16, 20), (16, 21), (16, 22))
    hand_limbs = []
    for root in (91, 112):
        for f in range(5):
            chain = (root, *(root + 1 + 4 * f + k for k in range(4)))
            hand_limbs += list(itertools.pairwise(chain))
    limbs = (*body_limbs, *hand_limbs)
    pairs = (*COCO17.left_right_joints, (17, 20), (18, 21), (19, 22),
             *((23 + left, 23 + right) for right, left in face_pairs), *((91 + i, 112 + i) for i in range(21)))
    return Layout(
        name="coco_wholebody133",
        center="nose",
        joints=joints,
        limbs=limbs,
        left_right_joints=pairs,
        left_right_limbs=_mirrored_limbs(limbs, pairs),
        description="COCO-WholeBody 133 keypoints (RTMPose/DWPose wholebody models); face and hands unlinked "
        "to the body",
        family="coco",
    )


COCO_WHOLEBODY133 = _wholebody()

LAYOUTS: dict[str, Layout] = {
    lay.name: lay
    for lay in (COCO17, PENN13, OPENPOSE18, BODY25, NTU25, KINECT20, JHMDB15, MEDIAPIPE33, HALPE26, CROWDPOSE14,
                MPII16, H36M17, COCO_WHOLEBODY133, POSETRACK17)
}

# fmt: on


def get_layout(name: str) -> Layout:
    try:
        return LAYOUTS[name]
    except KeyError:
        raise ActrecError(f"unknown layout {name!r}; known layouts: {', '.join(LAYOUTS)}") from None
