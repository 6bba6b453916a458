"""etl.heatmaps.kernels: parity with MMAction2's GeneratePoseTarget (the anchor dump), output dtypes, robustness."""

from __future__ import annotations

import json

import numba
import numpy as np
import pytest

from etl.heatmaps.kernels import quantize_uint8, render_heatmaps, set_threads
from etl.pose.skeleton import COCO17

LIMBS = np.array(COCO17.limbs)  # the PoseC3D *-limb configs' order (= the anchor's CONFIG_LIMB_SKELETONS)
SAMPLES = ("s0", "s1", "s2", "s3")  # s3 has two persons


def render(kp, sc, hw, *, joints=True, limbs=None, dtype=np.float32, fill=None, **kw):
    """Render into a fresh (T, C, H, W) buffer, pre-filled with garbage unless fill is None."""
    C = kp.shape[2] * joints + (0 if limbs is None else len(limbs))
    out = np.empty((kp.shape[1], C, *hw), dtype)
    if fill is not None:
        out[...] = fill
    return render_heatmaps(kp, sc, out, with_joints=joints, limbs=limbs, **kw)


def gpt_input(dump, key):
    """The exact GeneratePoseTarget input of a dump sample: keypoints (M, T, V, 2), scores (M, T, V), (H, W)."""
    p = f"{key}_gpt_in_"
    return dump[p + "keypoint"], dump[p + "keypoint_score"], tuple(int(v) for v in dump[p + "img_shape"])


def assert_parity(ours, ref):
    """The contract is max abs error <= 1e-5; in fact the kernels reproduce the anchor bit for bit (numpy's
    float32 exp is replicated exactly; limb maps use float64 exp rounded to float32 like numpy)."""
    assert ours.shape == ref.shape
    assert ours.dtype == np.float32
    assert np.abs(ours.astype(np.float64) - ref).max() <= 1e-5
    np.testing.assert_array_equal(ours, ref)


@pytest.fixture(scope="module")
def edge(anchor_dump):
    return gpt_input(anchor_dump, "edge")


# --- parity with the anchor ----------------------------------------------------------------------------------
@pytest.mark.shared
@pytest.mark.parametrize("key", SAMPLES)
def test_train_joint_parity(anchor_dump, key):
    kp, sc, hw = gpt_input(anchor_dump, key)
    assert_parity(render(kp, sc, hw, fill=7.0), anchor_dump[f"{key}_train_joint_heatmap_TCHW"])


@pytest.mark.shared
@pytest.mark.parametrize("key", SAMPLES)
def test_train_limb_parity(anchor_dump, key):
    kp, sc, hw = gpt_input(anchor_dump, key)
    out = render(kp, sc, hw, joints=False, limbs=LIMBS, fill=7.0)
    assert_parity(out, anchor_dump[f"{key}_train_limb_heatmap_TCHW"])


@pytest.mark.shared
def test_config_limb_order_is_the_coco17_layout(anchor_dump):
    meta = json.loads(str(anchor_dump["meta_json"]))
    assert [list(limb) for limb in COCO17.limbs] == meta["limb_skeletons_config"]


@pytest.mark.shared
def test_edge_cases_parity(anchor_dump, edge):
    """Borders, off-canvas points, a joint at (0, 0), a zero-length limb, overlapping persons."""
    kp, sc, hw = edge
    assert_parity(render(kp, sc, hw, fill=-3.0), anchor_dump["edge_joint_heatmap_TCHW"])
    assert_parity(render(kp, sc, hw, joints=False, limbs=LIMBS), anchor_dump["edge_limb_heatmap_TCHW"])


@pytest.mark.shared
def test_edge_default_skeleton_order(anchor_dump, edge):
    kp, sc, hw = edge
    meta = json.loads(str(anchor_dump["meta_json"]))
    default = np.array(meta["limb_skeletons_gpt_default"])
    out = render(kp, sc, hw, joints=False, limbs=default)
    assert_parity(out, anchor_dump["edge_limb_default_skeleton_heatmap_TCHW"])


@pytest.mark.shared
def test_edge_no_score(anchor_dump, edge):
    """use_score=False: the anchor replaces every score by 1, so even joints with score < eps are drawn."""
    kp, sc, hw = edge
    assert_parity(render(kp, sc, hw, use_score=False), anchor_dump["edge_joint_no_score_heatmap_TCHW"])


@pytest.mark.shared
def test_eps_pyskl(anchor_dump, edge):
    """eps=1e-3 (PYSKL) skips the score 5e-4 of joint 6 in frame 3, which eps=1e-4 (MMAction2) draws; every other
    plane is unchanged (person 1 has score 0 there, joint 5's 5e-5 is below both)."""
    kp, sc, hw = edge
    assert sc[0, 3, 6] == np.float32(5e-4)
    assert sc[1, 3, 6] == 0
    ref_j = anchor_dump["edge_joint_heatmap_TCHW"].copy()
    assert ref_j[3, 6].max() > 0
    ref_j[3, 6] = 0
    assert_parity(render(kp, sc, hw, eps=1e-3), ref_j)

    ref_l = anchor_dump["edge_limb_heatmap_TCHW"].copy()
    touches_6 = (LIMBS == 6).any(axis=1)
    assert ref_l[3, touches_6].max() > 0
    ref_l[3, touches_6] = 0
    assert_parity(render(kp, sc, hw, joints=False, limbs=LIMBS, eps=1e-3), ref_l)


# --- output dtypes -------------------------------------------------------------------------------------------
@pytest.mark.shared
def test_uint8_is_the_quantised_float32_render(anchor_dump):
    """Max-accumulating in uint8 equals quantising the float32 result (quantisation is monotone)."""
    kp, sc, hw = gpt_input(anchor_dump, "s3")  # two persons: the max over persons is exercised
    f32 = render(kp, sc, hw, limbs=LIMBS)
    u8 = render(kp, sc, hw, limbs=LIMBS, dtype=np.uint8, fill=201)
    np.testing.assert_array_equal(u8, quantize_uint8(f32))
    err = np.abs(u8 / 255.0 - f32.astype(np.float64))
    assert err.max() <= 1 / 510 + 1e-12  # half a quantisation step (scores here are <= 1)
    assert err.max() <= 1 / 255


@pytest.mark.shared
def test_float16_is_the_rounded_float32_render(anchor_dump):
    kp, sc, hw = gpt_input(anchor_dump, "s3")
    f32 = render(kp, sc, hw, limbs=LIMBS)
    f16 = render(kp, sc, hw, limbs=LIMBS, dtype=np.float16, fill=np.float16(-5))
    np.testing.assert_array_equal(f16.view(np.uint16), f32.astype(np.float16).view(np.uint16))


def test_quantize_uint8_rounds_to_nearest_and_saturates():
    v = np.array([0, 1e-9, 2 / 255, 0.25, 1.0, 1.5], np.float32)
    np.testing.assert_array_equal(quantize_uint8(v), [0, 0, 2, 64, 255, 255])
    grid = np.linspace(0, 1, 1_000_001, dtype=np.float32)
    assert np.abs(quantize_uint8(grid) / 255.0 - grid).max() <= 1 / 510 + 1e-12


def test_float16_store_rounds_like_numpy():
    """Values from subnormal half to overflow, through a 1-joint render whose score sets the value."""
    rng = np.random.default_rng(3)
    scores = np.concatenate([10.0 ** rng.uniform(-8, 5, 400), [6.1e-5, 65504, 65519.9, 65520, 1e-4]])
    kp = np.full((1, scores.size, 1, 2), 2.0, np.float32)  # the peak pixel (2, 2) holds exactly the score
    sc = scores.astype(np.float32).reshape(1, -1, 1)
    f32 = render(kp, sc, (5, 5))
    f16 = render(kp, sc, (5, 5), dtype=np.float16)
    with np.errstate(over="ignore"):
        expected = f32.astype(np.float16)
    np.testing.assert_array_equal(f16.view(np.uint16), expected.view(np.uint16))


# --- channels, threads, robustness ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def synth():
    """Two persons, 6 frames, COCO-17 on a 40 x 48 (H x W) canvas, some joints near and past the borders."""
    rng = np.random.default_rng(0)
    kp = rng.uniform(-4, 50, (2, 6, 17, 2)).astype(np.float32)
    sc = rng.uniform(0, 1, (2, 6, 17)).astype(np.float32)
    return kp, sc, (40, 48)


def test_joints_then_limbs_concatenated(synth):
    kp, sc, hw = synth
    both = render(kp, sc, hw, limbs=LIMBS, fill=9.0)
    assert both.shape[1] == 17 + len(LIMBS)
    np.testing.assert_array_equal(both[:, :17], render(kp, sc, hw))
    np.testing.assert_array_equal(both[:, 17:], render(kp, sc, hw, joints=False, limbs=LIMBS))


def test_bitwise_identical_across_thread_counts(synth):
    kp, sc, hw = synth
    before = numba.get_num_threads()
    try:
        outs = []
        for n in (1, 2):
            set_threads(n)
            outs.append(
                [render(kp, sc, hw, limbs=LIMBS, dtype=dt) for dt in (np.float32, np.uint8, np.float16)]
            )
    finally:
        set_threads(before)
    for a, b in zip(*outs, strict=True):
        assert a.tobytes() == b.tobytes()


def test_set_threads_clamps():
    before = numba.get_num_threads()
    try:
        assert set_threads(0) == 1
        assert set_threads(10**6) == numba.config.NUMBA_NUM_THREADS
        assert set_threads(None) == numba.config.NUMBA_NUM_THREADS
        assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS
    finally:
        set_threads(before)


def test_out_fully_overwritten(synth):
    kp, sc, hw = synth
    for dt, garbage in ((np.float32, np.nan), (np.uint8, 255), (np.float16, np.inf)):
        clean = np.zeros((6, 17 + len(LIMBS), *hw), dt)
        render_heatmaps(kp, sc, clean, with_joints=True, limbs=LIMBS)
        dirty = render(kp, sc, hw, limbs=LIMBS, dtype=dt, fill=garbage)
        assert dirty.tobytes() == clean.tobytes()


def test_nan_inputs_are_skipped_never_drawn(synth):
    kp, sc, hw = synth
    kp_nan, sc_nan = kp.copy(), sc.copy()
    kp_nan[0, 1, 3] = np.nan  # both coordinates
    kp_nan[1, 2, 5, 0] = np.nan  # x only
    kp_nan[0, 4, 9, 1] = np.inf
    sc_nan[1, 0, 7] = np.nan
    # expected: the same joints dropped through a zero score
    sc_ref = sc.copy()
    sc_ref[0, 1, 3] = sc_ref[1, 2, 5] = sc_ref[0, 4, 9] = sc_ref[1, 0, 7] = 0
    for use_score in (True, False):
        got = render(kp_nan, sc_nan, hw, limbs=LIMBS, use_score=use_score)
        assert np.isfinite(got).all()
        if use_score:
            np.testing.assert_array_equal(got, render(kp, sc_ref, hw, limbs=LIMBS))


def test_inputs_not_mutated(synth):
    kp, sc, hw = synth
    kp64 = kp.astype(np.float64)
    kp64[0, 0, 0] = np.nan
    copies = kp.copy(), sc.copy(), kp64.copy(), LIMBS.copy()
    render(kp, sc, hw, limbs=LIMBS, use_score=False)
    render(kp64, sc, hw, limbs=LIMBS, dtype=np.uint8)
    for a, b in zip((kp, sc, kp64, LIMBS), copies, strict=True):
        np.testing.assert_array_equal(a, b)


def test_float64_inputs_match_float32(synth):
    kp, sc, hw = synth
    np.testing.assert_array_equal(
        render(kp.astype(np.float64), sc.astype(np.float64), hw, limbs=LIMBS), render(kp, sc, hw, limbs=LIMBS)
    )


def test_far_off_canvas_and_huge_coordinates():
    kp = np.array([[[[-1e30, 5], [1e30, 1e30], [3, 4], [-2.2, 3.0]]]], np.float32)  # (1, 1, 4, 2)
    sc = np.ones((1, 1, 4), np.float32)
    limbs = np.array([[0, 1], [1, 2], [2, 3], [0, 3]])
    out = render(kp, sc, (8, 8), limbs=limbs)
    assert np.isfinite(out).all()
    assert out.max() <= 1
    assert out[0, 0].max() == 0
    assert out[0, 1].max() == 0
    # x = -2.2: int(-2.2 + 1.8) + 1 = 1 (truncation toward 0), so column 0 is drawn, as by the anchor
    assert out[0, 3, :, 0].max() > 0
    assert out[0, 3, :, 1:].max() == 0


def test_sigma_and_window_match_a_direct_formula():
    """sigma != 0.6: value exp(-d2 / (2 sigma^2)) * score inside the truncated 3-sigma window, 0 outside."""
    sigma, H, W = 1.3, 12, 10
    kp = np.array([[[[4.3, 6.7], [0.2, 11.5]]]], np.float32)
    sc = np.array([[[0.8, 0.5]]], np.float32)
    out = render(kp, sc, (H, W), sigma=sigma)
    ys, xs = np.mgrid[0:H, 0:W]
    for v in range(2):
        mx, my = (float(c) for c in kp[0, 0, v])
        ref = np.exp(-((xs - mx) ** 2 + (ys - my) ** 2) / (2 * sigma**2)) * float(sc[0, 0, v])
        inside = (
            (xs >= max(int(mx - 3 * sigma), 0))
            & (xs < min(int(mx + 3 * sigma) + 1, W))
            & (ys >= max(int(my - 3 * sigma), 0))
            & (ys < min(int(my + 3 * sigma) + 1, H))
        )
        np.testing.assert_allclose(out[0, v], np.where(inside, ref, 0), rtol=0, atol=1e-6)


def test_no_persons_and_no_channels():
    out = render(np.zeros((0, 3, 17, 2), np.float32), np.zeros((0, 3, 17), np.float32), (8, 8), fill=5.0)
    assert out.shape == (3, 17, 8, 8)
    assert not out.any()


@pytest.mark.parametrize(
    ("shape", "dtype", "why"),
    [
        ((3, 16, 8, 8), np.float32, "channel count"),
        ((2, 17, 8, 8), np.float32, "frame count"),
        ((3, 17, 8, 8), np.float64, "dtype"),
        ((3, 17, 8), np.float32, "rank"),
    ],
)
def test_bad_out_raises(shape, dtype, why):
    kp, sc = np.zeros((1, 3, 17, 2), np.float32), np.ones((1, 3, 17), np.float32)
    match = r"out dtype must be one of" if why == "dtype" else r"out must be \(T=3, C=17, H, W\); got"
    with pytest.raises(ValueError, match=match):
        render_heatmaps(kp, sc, np.empty(shape, dtype), with_joints=True, limbs=None)


def test_non_contiguous_out_and_bad_limbs_raise():
    kp, sc = np.zeros((1, 3, 17, 2), np.float32), np.ones((1, 3, 17), np.float32)
    with pytest.raises(ValueError, match="out must be a writeable C-contiguous array"):
        render_heatmaps(kp, sc, np.empty((3, 17, 8, 16), np.float32)[..., ::2], with_joints=True, limbs=None)
    with pytest.raises(ValueError, match=r"limb joint indices must be in \[0, 17\); got 0\.\.17"):
        render_heatmaps(kp, sc, np.empty((3, 1, 8, 8), np.float32), with_joints=False, limbs=[[0, 17]])


def _render_small(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    kp = rng.uniform(0, 32, (1, 8, 17, 2)).astype(np.float32)
    sc = rng.uniform(0.2, 1, (1, 8, 17)).astype(np.float32)
    return render(kp, sc, (32, 32), limbs=LIMBS, dtype=np.uint8).tobytes()


def test_fork_after_a_parallel_kernel_ran():
    """DataLoader / multiprocessing workers fork after the parent ran a kernel (the omp layer kills them)."""
    import multiprocessing as mp

    expected = [_render_small(s) for s in range(4)]  # the parent runs the parallel kernel first
    with mp.get_context("fork").Pool(2) as pool:
        assert pool.map(_render_small, range(4)) == expected


def test_concurrent_calls_from_threads():
    """The renderer calls kernels from several threads at once: safe with the tbb layer, which etl.heatmaps.numba_setup
    selects (tbb is a dependency, so anything else here is a broken install)."""
    from concurrent.futures import ThreadPoolExecutor

    expected = [_render_small(s) for s in range(8)]
    assert numba.threading_layer() == "tbb"
    with ThreadPoolExecutor(4) as ex:
        assert list(ex.map(_render_small, range(8))) == expected
