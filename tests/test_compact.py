"""etl.heatmaps.compact: PoseCompact box + Resize/CenterCrop canvas map, and the full val pipeline against the anchor."""

from __future__ import annotations

import numpy as np
import pytest

from etl.heatmaps.compact import compact_box, to_canvas
from etl.heatmaps.kernels import render_heatmaps
from etl.pose.skeleton import COCO17

LIMBS = np.array(COCO17.limbs)


def val_input(dump, key):
    """The anchor's val clip after UniformSampleFrames(test_mode): (M, 48, V, 2), (M, 48, V), (h, w)."""
    inds = dump[f"{key}_val_frame_inds"]
    kp = dump[f"{key}_raw_keypoint"][:, inds]
    sc = dump[f"{key}_raw_keypoint_score"][:, inds]
    return kp, sc, tuple(int(v) for v in dump[f"{key}_raw_img_shape"])


def render64(kp, sc, *, limbs):
    out = np.full((kp.shape[1], 17, 64, 64), 3.0, np.float32)
    return render_heatmaps(kp, sc, out, with_joints=limbs is None, limbs=limbs)


@pytest.mark.shared
@pytest.mark.parametrize("key", ["s0", "s1", "s2", "s3"])
def test_val_pipeline_parity(anchor_dump, key):
    """compact_box (on the 48 sampled frames) + to_canvas(64) + render_heatmaps vs the anchor's val outputs.

    Exact (bitwise) where the anchor is right. It is not right for joints with a coordinate exactly 0: the
    synthetic clips clip joints to the image border, so some have y = 0 with a positive score, and MMAction2
    treats any 0 coordinate as missing (PoseCompact leaves it out of the box and does not shift it, so the
    joint lands at y = 0 * scale - crop on the canvas instead of its real place). Hence:
    - `zero_is_missing=True` reproduces the anchor's box; the canvas keypoints are then bitwise equal for every
      keypoint without a 0 coordinate, and so is every heatmap plane whose joint(s) have none (or are not drawn:
      s3's absent second person is all zeros with score 0);
    - the planes touching such a joint differ (we draw the joint where it is);
    - with our default rule (valid = finite and score >= eps) the box includes those joints too; s1 has no 0
      coordinate, so there the whole output is bitwise equal under both rules.
    """
    kp, sc, hw = val_input(anchor_dump, key)
    ref_kp = anchor_dump[f"{key}_val_gpt_in_keypoint"]
    ref_j = anchor_dump[f"{key}_val_joint_heatmap_TCHW"]
    ref_l = anchor_dump[f"{key}_val_limb_heatmap_TCHW"]

    canvas = to_canvas(kp, compact_box(kp, sc, img_hw=hw, zero_is_missing=True), 64)
    clean_kp = (kp != 0).all(axis=-1)  # (M, T, V): keypoints the anchor moves like we do
    np.testing.assert_array_equal(canvas[clean_kp], ref_kp[clean_kp])

    drawn_ok = clean_kp | (sc < 1e-4)  # a 0-coordinate joint with score < eps is drawn by neither
    clean_j = drawn_ok.all(axis=0)  # (T, V) joint planes without a disputed joint in any person
    clean_l = clean_j[:, LIMBS[:, 0]] & clean_j[:, LIMBS[:, 1]]  # (T, L)
    got_j, got_l = render64(canvas, sc, limbs=None), render64(canvas, sc, limbs=LIMBS)
    np.testing.assert_array_equal(got_j[clean_j], ref_j[clean_j])
    np.testing.assert_array_equal(got_l[clean_l], ref_l[clean_l])
    assert clean_j.mean() > 0.5
    assert clean_l.mean() > 0.5  # most planes are compared

    if key == "s1":  # no 0 coordinate: everything is exact, with either validity rule
        assert clean_kp.all()
        default = to_canvas(kp, compact_box(kp, sc, img_hw=hw), 64)
        np.testing.assert_array_equal(render64(default, sc, limbs=None), ref_j)
        np.testing.assert_array_equal(render64(default, sc, limbs=LIMBS), ref_l)


def test_box_square_padded_and_truncated():
    kp = np.array([[[[100.0, 200.0], [300.0, 260.0]]]], np.float32)  # (1, 1, 2, 2): 200 x 60 tight box
    sc = np.ones((1, 1, 2), np.float32)
    # centre (200, 230), half width 100 * 1.25 = 125, half height max(125, 37.5) = 125
    np.testing.assert_array_equal(compact_box(kp, sc, img_hw=(480, 640)), [75, 105, 325, 355])
    np.testing.assert_array_equal(compact_box(kp, sc, img_hw=(480, 640), hw_ratio=None), [75, 192, 325, 267])
    # int() truncates toward 0, also below 0 (allow_imgpad: the box may leave the image)
    kp2 = kp - np.float32(150.7)
    np.testing.assert_array_equal(compact_box(kp2, sc, img_hw=(480, 640)), [-75, -45, 174, 204])


def test_box_validity_rule():
    kp = np.array([[[[0.0, 50.0], [40.0, 90.0], [500.0, 500.0], [np.nan, 1.0]]]], np.float32)
    sc = np.array([[[0.9, 0.9, 1e-5, 0.9]]], np.float32)
    # default: x = 0 is a real coordinate; the low-score and the NaN joint are ignored
    box = compact_box(kp, sc, img_hw=(100, 100), padding=0.0)
    np.testing.assert_array_equal(box, [0, 50, 40, 90])
    # the anchor's rule: 0 is missing (x range 40..500, y range 1..500), scores ignored
    anchor = compact_box(kp, sc, img_hw=(100, 100), padding=0.0, hw_ratio=None, zero_is_missing=True)
    np.testing.assert_array_equal(anchor, [40, 1, 500, 500])


def test_box_falls_back_to_the_whole_image():
    sc = np.ones((1, 2, 1), np.float32)
    small = np.array([[[[10.0, 10.0]], [[15.0, 40.0]]]], np.float32)  # 5 px wide < threshold 10
    np.testing.assert_array_equal(compact_box(small, sc, img_hw=(720, 1280)), [0, 0, 1280, 720])
    missing = np.full((1, 2, 1, 2), np.nan, np.float32)
    np.testing.assert_array_equal(compact_box(missing, sc, img_hw=(720, 1280)), [0, 0, 1280, 720])


def test_box_does_not_mutate_input():
    kp = np.array([[[[np.nan, 5.0], [40.0, 90.0]]]], np.float32)
    before = kp.copy()
    compact_box(kp, np.ones((1, 1, 2), np.float32), img_hw=(100, 100), zero_is_missing=True)
    np.testing.assert_array_equal(kp, before)


def test_canvas_of_a_square_box():
    kp = np.array([[[[75.0, 105.0], [325.0, 355.0], [200.0, 230.0], [np.nan, np.nan]]]], np.float32)
    out = to_canvas(kp, np.array([75, 105, 325, 355]), 64)
    np.testing.assert_array_equal(out[0, 0, :3], [[0, 0], [64, 64], [32, 32]])
    assert np.isnan(out[0, 0, 3]).all()
    assert out.dtype == np.float32
    assert not np.shares_memory(out, kp)


def test_canvas_of_the_whole_image_is_centre_cropped():
    """1920 x 1080 -> Resize short side 64 -> 114 x 64 -> CenterCrop(64) shifts x by (114 - 64) // 2 = 25."""
    kp = np.array([[[[960.0, 540.0], [0.0, 0.0]]]], np.float32)
    out = to_canvas(kp, np.array([0, 0, 1920, 1080]), 64)
    sx, sy = np.float32(114 / 1920), np.float32(64 / 1080)
    np.testing.assert_array_equal(out[0, 0], [[np.float32(960) * sx - 25, np.float32(540) * sy], [-25, 0]])
    np.testing.assert_allclose(out[0, 0, 0], [32, 32], atol=1e-4)


def test_canvas_rejects_empty_box():
    with pytest.raises(ValueError, match=r"^box \[5, 5, 5, 9\] must have a positive width and height"):
        to_canvas(np.zeros((1, 1, 1, 2), np.float32), np.array([5, 5, 5, 9]), 64)
