"""`validate_clip` on good clips: what it cleans, what it keeps, and that it never touches its input."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures_pose import confidences, make_clip, moving_poses

from etl.common.errors import ActrecError
from etl.pose.clip import PoseClip, Reject
from etl.pose.clip_checks import validate_clip
from etl.pose.skeleton import COCO17


def test_a_good_clip_passes_unchanged_as_a_new_object():
    clip = make_clip()
    result = validate_clip(clip, COCO17)
    assert isinstance(result, PoseClip)
    assert result is not clip
    np.testing.assert_array_equal(result.keypoints, clip.keypoints)
    np.testing.assert_array_equal(result.scores, clip.scores)
    assert result.keypoints is not clip.keypoints
    assert result.scores is not clip.scores
    assert result.meta == clip.meta
    assert result.meta is not clip.meta
    assert (result.clip_id, result.label_name, result.label, result.split) == ("clip_a", "wave", 3, "train")


def test_input_arrays_are_never_mutated():
    clip = make_clip()
    clip.keypoints[0, 1, 2] = np.inf
    clip.scores[0, 2, 3] = np.nan
    clip.scores[1, 3, 4] = 1.7
    before_kp, before_sc = clip.keypoints.copy(), clip.scores.copy()
    result = validate_clip(clip, COCO17)
    assert isinstance(result, PoseClip)
    np.testing.assert_array_equal(clip.keypoints, before_kp)
    np.testing.assert_array_equal(clip.scores, before_sc)


def test_output_is_float32_and_int_sized():
    clip = make_clip(
        keypoints=moving_poses(1, 4, 17).astype(np.float64),
        scores=np.ones((1, 4, 17)),
        img_h=np.int64(270),
        img_w=np.uint16(480),
    )
    result = validate_clip(clip, COCO17)
    assert result.keypoints.dtype == np.float32
    assert result.scores.dtype == np.float32
    assert type(result.img_h) is int
    assert type(result.img_w) is int
    assert (result.img_h, result.img_w) == (270, 480)


def test_scores_are_cleaned():
    scores = confidences((2, 8, 17))
    scores[0, 0, 0] = np.nan  # -> 0, joint missing
    scores[0, 0, 1] = 1.5  # -> 1
    scores[0, 0, 2] = -0.2  # -> 0, joint missing
    scores[0, 0, 3] = 0.0  # a zero score means missing: coordinates become NaN
    result = validate_clip(make_clip(scores=scores), COCO17)
    assert result.scores[0, 0, 1] == 1.0
    for joint in (0, 2, 3):
        assert result.scores[0, 0, joint] == 0
        assert np.isnan(result.keypoints[0, 0, joint]).all()
    assert result.scores.min() >= 0
    assert result.scores.max() <= 1


def test_declared_missing_joints_are_not_bad_data():
    """NaN coordinates with score 0 are the PoseClip convention for a missing joint, not an error."""
    clip = make_clip()
    clip.keypoints[1, 2:5, 6] = np.nan
    clip.scores[1, 2:5, 6] = 0
    result = validate_clip(clip, COCO17, nan_policy="reject")
    assert isinstance(result, PoseClip)
    assert np.isnan(result.keypoints[1, 2:5, 6]).all()


@pytest.mark.parametrize(("label_name", "label"), [("wave", None), (None, 0), ("wave", 3)])
def test_a_name_or_a_number_is_enough_as_label(label_name, label):
    assert isinstance(validate_clip(make_clip(label_name=label_name, label=label), COCO17), PoseClip)


def test_a_partly_missing_clip_is_kept():
    clip = make_clip()
    clip.keypoints[:, :7] = np.nan
    clip.scores[:, :7] = 0
    result = validate_clip(clip, COCO17)
    assert isinstance(result, PoseClip)
    assert (result.scores[:, 7] > 0).all()


def test_unknown_nan_policy_is_a_usage_error():
    with pytest.raises(ActrecError, match="nan policy"):
        validate_clip(make_clip(), COCO17, nan_policy="drop")


def test_reject_keeps_clip_id_and_source():
    result = validate_clip(make_clip(label_name=None, label=None), COCO17)
    assert isinstance(result, Reject)
    assert (result.clip_id, result.source) == ("clip_a", "/data/clip_a.npz")
