"""PoseC3D heatmap kernels (numba): MMAction2 `GeneratePoseTarget`, reproduced bit for bit, into a caller's buffer.

Semantics (MMAction2 1.2.0, `mmaction/datasets/transforms/pose_transforms.py`; the formulas are also recorded in
`../shared/anchor/anchor_dump.npz["meta_json"]["formula"]`):

- pixel grid: integer (x, y), no +0.5 centre offset; coordinates are in output pixels.
- window: st = max(int(lo - 3 sigma), 0), ed = min(int(hi + 3 sigma) + 1, size), int() truncating toward 0 and
  computed in float64 (numpy 1.x promotes `np.float32 - float` to float64), lo/hi = the joint, or the bbox of a
  limb's segment. Values outside the window are 0 (hard truncation), inside it exp(-d2 / (2 sigma^2)) * score.
- joint: skipped if score < eps; float32 arithmetic and numpy's float32 SIMD exp (`_exp32`, a replica: glibc's
  expf differs from it in ~30% of arguments by 1-3 ulp).
- limb (a, b): s = min(score_a, score_b), skipped if s < eps; |b - a|^2 < 1 draws the joint gaussian at a with
  score_a; otherwise d2 = squared distance to the segment, projection clamped as in the anchor (t <= 0 -> d2_a,
  t >= 1 -> d2_b). The anchor's patch is float64 (an int64 mask promotes it), so exp and the score product are
  float64 here too (`_exp64`, within 1 ulp of numpy's) and rounded to float32 once, as numpy's store does.
- persons: element-wise max. Channels: joints first, then limbs (the anchor writes limb maps over the joint
  channels when both are on; that bug is not reproduced).

Deliberate differences, all on inputs where the anchor crashes or writes NaN: non-finite coordinates and NaN
scores are skipped (missing joint), never drawn.

Output dtypes: float32; uint8 = min(255, floor(v * 255 + 0.5)) so |v - q / 255| <= 1/510 for v in [0, 1];
float16 = the float32 value rounded to nearest even. Both maps are monotone, so max-accumulating the quantised
value equals quantising the float32 max: the kernel writes the output dtype directly (no float32 scratch).

Parallelism: one `prange` over frames; an iteration zeroes and draws only its frame's (C, H, W) planes, one
plane at a time while it is in L1, so the output is bitwise identical for every thread count. (A clip of one
frame runs on one thread.)
"""

from __future__ import annotations

import math

import etl.heatmaps.numba_setup  # noqa: F401  (cache dir + threading layer: must run before numba is imported)

# isort: split
import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange
from numba.core import types
from numba.extending import intrinsic, overload

__all__ = ["OUTPUT_DTYPES", "quantize_uint8", "render_heatmaps", "set_threads"]

OUTPUT_DTYPES = (np.dtype(np.float32), np.dtype(np.float16), np.dtype(np.uint8))
_NO_LIMBS = np.zeros((0, 2), np.int64)


# --- numpy's float32 exp on x86 (AVX2/AVX512F `simd_exp_FLOAT`), bit for bit ----------------------------------
# Checked: equal to numpy 2.4 for every float32 in [-104, 0] and to numpy 1.26 (the anchor's) on 3e7 samples.
def _f32(bits: int) -> np.float32:
    return np.uint32(bits).view(np.float32)


# Constants as bit patterns: exactly the float literals of numpy's npy_simd_data.h / npy_math.h.
_LOG2E = _f32(0x3FB8AA3B)
_CODY_C1 = _f32(0xBF317200)  # -ln2, high part (Cody-Waite)
_CODY_C2 = _f32(0xB5BFBE8E)  # -ln2, low part
_P0, _P1, _P2 = _f32(0x3F800000), _f32(0x3F39CBD5), _f32(0x3E7D4C58)
_P3, _P4, _P5 = _f32(0x3D517D8C), _f32(0x3BDD7159), _f32(0x3A053DD8)
_Q0, _Q1, _Q2 = _f32(0x3F800000), _f32(0xBE8C6857), _f32(0x3CB0E832)
_RINT_MAGIC = np.float32(12582912.0)  # 1.5 * 2^23: x + M - M rounds to nearest even for |x| < 2^22
_XMAX = np.float32(88.72283935546875)
_XMIN = np.float32(-103.97208404541015625)


@intrinsic
def _fma(typingctx, a, b, c):
    """Fused a * b + c, one rounding (numpy's kernel uses FMA; a multiply then an add round twice)."""
    if not (a == b == c and a in (types.float32, types.float64)):
        return None
    sig = a(a, a, a)

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return sig, codegen


@intrinsic
def _exp2_f64(typingctx, k):
    """2.0 ** k as float64 for an integer k in [-1022, 1023], built from the exponent bits (exact, no libm)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        bits = builder.shl(
            builder.add(args[0], ir.Constant(ir.IntType(64), 1023)), ir.Constant(ir.IntType(64), 52)
        )
        return builder.bitcast(bits, ir.DoubleType())

    return sig, codegen


@njit(fastmath=False)
def _exp32(x):
    """exp of a float32 as numpy computes it: Cody-Waite reduction, P5/Q2 rational, 2^k scaling with one
    rounding (`scalef`: done in float64, where poly * 2^k is exact, then rounded to float32 once)."""
    if x != x:
        return x
    if x >= _XMAX:
        return np.float32(np.inf)
    if x <= _XMIN:
        return np.float32(0.0)
    q = x * _LOG2E
    q = (q + _RINT_MAGIC) - _RINT_MAGIC
    r = _fma(q, _CODY_C1, x)
    r = _fma(q, _CODY_C2, r)
    num = _fma(_P5, r, _P4)
    num = _fma(num, r, _P3)
    num = _fma(num, r, _P2)
    num = _fma(num, r, _P1)
    num = _fma(num, r, _P0)
    den = _fma(_Q2, r, _Q1)
    den = _fma(den, r, _Q0)
    poly = num / den
    return np.float32(np.float64(poly) * _exp2_f64(np.int64(q)))


# --- float64 exp for the limb maps (inline, so that LLVM can vectorise the loop; libm's exp is a call) ------
_INV_LN2 = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # fdlibm split: k * _LN2_HI is exact for |k| < 2^11
_LN2_LO = 1.90821492927058770002e-10
_F64_RINT_EXP = 6755399441055744.0  # 1.5 * 2^52
_EXP_C = tuple(1.0 / math.factorial(n) for n in range(14))  # Taylor to r^13: < 1e-17 relative on |r| <= ln2/2


@njit(fastmath=False)
def _exp64(z):
    """exp(z) for z <= 0 in float64, within 1 ulp of glibc/numpy (measured on 1e8 arguments; after the product
    with the score and the rounding to float32 no result differed from numpy's). Below -200 and for NaN it
    returns exp(-200) ~ 1e-87, which the float32 rounding turns into 0 like the true value."""
    z = z if z > -200.0 else -200.0
    k = (z * _INV_LN2 + _F64_RINT_EXP) - _F64_RINT_EXP
    r = (z - k * _LN2_HI) - k * _LN2_LO
    p = _EXP_C[13]
    p = _fma(p, r, _EXP_C[12])
    p = _fma(p, r, _EXP_C[11])
    p = _fma(p, r, _EXP_C[10])
    p = _fma(p, r, _EXP_C[9])
    p = _fma(p, r, _EXP_C[8])
    p = _fma(p, r, _EXP_C[7])
    p = _fma(p, r, _EXP_C[6])
    p = _fma(p, r, _EXP_C[5])
    p = _fma(p, r, _EXP_C[4])
    p = _fma(p, r, _EXP_C[3])
    p = _fma(p, r, _EXP_C[2])
    p = _fma(p, r, _EXP_C[1])
    p = _fma(p, r, _EXP_C[0])
    return p * _exp2_f64(np.int64(k))


# --- output stores: max-accumulate one value in the output dtype ---------------------------------------------
def _put(plane, i, v):
    """plane[i] = max(plane[i], store(v)) for a float32 value v >= 0 (typing-time dispatch on plane's dtype)."""


@overload(_put)
def _put_impl(plane, i, v):
    if plane.dtype == types.float32:

        def put_f32(plane, i, v):
            if v > plane[i]:
                plane[i] = v

        return put_f32
    if plane.dtype == types.uint8:

        def put_u8(plane, i, v):
            q = _quant_u8(v)
            if q > plane[i]:
                plane[i] = q

        return put_u8
    if plane.dtype == types.uint16:  # float16 output, seen through a uint16 view (numba has no CPU float16)

        def put_f16(plane, i, v):
            h = _f16_bits(v)
            if h > plane[i]:  # for v >= 0 the half bit patterns sort like the values
                plane[i] = h

        return put_f16
    return None


@njit(fastmath=False)
def _quant_u8(v):
    """min(255, floor(v * 255 + 0.5)) for v >= 0, exact (float64 holds v * 255 + 0.5 without rounding)."""
    f = np.float64(v) * 255.0 + 0.5
    if f >= 255.0:
        return np.uint8(255)
    return np.uint8(np.int64(f))


_F64_RINT = 4503599627370496.0  # 2^52: y + M - M rounds y to nearest even for 0 <= y < 2^51


@njit(fastmath=False)
def _f16_bits(v):
    """Bits of float16(v) for a float32 v >= 0, round to nearest even (what numpy's astype(float16) does)."""
    if v >= 65520.0:  # halfway between 65504 (max half) and 2^16: ties to the even side, i.e. inf
        return np.uint16(0x7C00)
    x = np.float64(v)
    if x < 6.103515625e-05:  # < 2^-14: subnormal half, units of 2^-24 (1024 -> carries into the first normal)
        return np.uint16(np.int64((x * 16777216.0 + _F64_RINT) - _F64_RINT))
    m, e = math.frexp(x)  # x = m * 2^e, m in [0.5, 1): 11 significant bits = m * 2048 in [1024, 2048)
    r = np.int64((m * 2048.0 + _F64_RINT) - _F64_RINT)  # 2048 carries into the exponent below
    return np.uint16(((e + 14) << 10) + r - 1024)


def quantize_uint8(x: np.ndarray) -> np.ndarray:
    """The uint8 code of a float heatmap: min(255, floor(x * 255 + 0.5)), for x >= 0 (reference for tests)."""
    q = np.floor(np.asarray(x, np.float64) * 255.0 + 0.5)
    return np.minimum(q, 255.0).astype(np.uint8)


# --- drawing -------------------------------------------------------------------------------------------------
@njit(fastmath=False)
def _win_start(v, n):
    """max(int(v), 0) with int() truncating toward 0, clipped to n (v finite float64)."""
    if v >= n:
        return n
    if v < 1.0:
        return 0
    return np.int64(v)


@njit(fastmath=False)
def _win_end(v, n):
    """min(int(v) + 1, n) with int() truncating toward 0 (so v in (-1, 0) gives 1), at least 0."""
    if v >= n:
        return n
    if v <= -1.0:
        return 0
    return np.int64(v) + 1


@njit(fastmath=False)
def _draw_joint(plane, H, W, mx, my, val, sig3, s2):
    """Max the gaussian of one joint (mx, my float32, val float32 > 0) into plane (H * W,) within its window."""
    x0 = _win_start(np.float64(mx) - sig3, W)
    x1 = _win_end(np.float64(mx) + sig3, W)
    y0 = _win_start(np.float64(my) - sig3, H)
    y1 = _win_end(np.float64(my) + sig3, H)
    two = np.float32(2.0)
    for y in range(y0, y1):
        dy = np.float32(y) - my
        dy2 = dy * dy
        row = y * W
        for x in range(x0, x1):
            dx = np.float32(x) - mx
            d2 = dx * dx + dy2  # float32, as the anchor's (x - mu_x)**2 + (y - mu_y)**2
            v = _exp32(-d2 / two / s2) * val
            _put(plane, row + x, v)


@njit(fastmath=False)
def _draw_limb(plane, H, W, ax, ay, bx, by, sa, s, sig3, s2, s2_64, buf):
    """Max the segment map of one limb a-b (float32 ends, s = min score > 0) into plane (H * W,); buf is a
    float64 scratch of H * W (the largest window)."""
    x0 = _win_start(np.float64(min(ax, bx)) - sig3, W)
    x1 = _win_end(np.float64(max(ax, bx)) + sig3, W)
    y0 = _win_start(np.float64(min(ay, by)) - sig3, H)
    y1 = _win_end(np.float64(max(ay, by)) + sig3, H)
    if x1 <= x0 or y1 <= y0:
        return
    dxab = np.float64(ax - bx)
    dyab = np.float64(ay - by)
    d2ab = dxab * dxab + dyab * dyab
    if d2ab < 1.0:
        _draw_joint(plane, H, W, ax, ay, sa, sig3, s2)
        return
    d2ab32 = np.float32(d2ab)
    two = np.float32(2.0)
    ex = bx - ax
    ey = by - ay
    s64 = np.float64(s)
    # Three passes over the window (row-major, k = pixel index): squared distances, then values in one flat
    # loop that LLVM vectorises (the float64 exp dominates), then the max-store into the plane.
    k = 0
    for y in range(y0, y1):
        fy = np.float32(y)
        dya = fy - ay
        dya2 = dya * dya
        dyb = fy - by
        dyb2 = dyb * dyb
        for x in range(x0, x1):
            fx = np.float32(x)
            dxa = fx - ax
            dxb = fx - bx
            d2a = dxa * dxa + dya2
            d2b = dxb * dxb + dyb2
            t = (d2a - d2b + d2ab32) / two / d2ab32
            lx = fx - (ax + t * ex)  # position - (start + t * (end - start)), float32 like the anchor
            ly = fy - (ay + t * ey)
            d2l = lx * lx + ly * ly
            d2 = d2a if t <= 0 else (d2b if t >= 1 else d2l)
            buf[k] = np.float64(d2)  # the anchor's patch is float64 from here on (an int64 mask promotes it)
            k += 1
    n = k
    for k in range(n):
        buf[k] = _exp64(-buf[k] / 2.0 / s2_64) * s64
    k = 0
    for y in range(y0, y1):
        row = y * W
        for x in range(x0, x1):
            v = np.float32(buf[k])  # one rounding, as numpy's store of the float64 patch into float32
            k += 1
            if v > 0:  # zeros are no-ops (the plane starts at 0)
                _put(plane, row + x, v)


@njit(fastmath=False)
def _valid(x, y, s, eps):
    """A joint is drawn if its coordinates are finite and its score is >= eps (NaN scores fail the test)."""
    return np.isfinite(x) and np.isfinite(y) and np.float64(s) >= eps


@njit(parallel=True, cache=True, fastmath=False, nogil=True)
def _render(kp, sc, out2, H, W, n_joint_ch, limbs, sig3, s2, s2_64, eps):
    """kp (M, T, V, 2) float32, sc (M, T, V) float32 (already 1 where use_score=False), out2 (T * C, H * W),
    limbs (L, 2) int64; channel c < n_joint_ch is joint c, the rest are limbs in order."""
    M, T = kp.shape[0], kp.shape[1]
    n_planes = out2.shape[0]
    C = n_planes // T
    for t in prange(T):
        buf = np.empty(H * W, np.float64)  # limb window scratch, one per frame (48 small allocations a clip)
        for c in range(C):
            i = t * C + c
            plane = out2[i]  # (H * W,), owned by this iteration only
            plane[:] = 0
            if c < n_joint_ch:
                for m in range(M):
                    mx = kp[m, t, c, 0]
                    my = kp[m, t, c, 1]
                    val = sc[m, t, c]
                    if _valid(mx, my, val, eps):
                        _draw_joint(plane, H, W, mx, my, val, sig3, s2)
            else:
                a = limbs[c - n_joint_ch, 0]
                b = limbs[c - n_joint_ch, 1]
                for m in range(M):
                    ax = kp[m, t, a, 0]
                    ay = kp[m, t, a, 1]
                    bx = kp[m, t, b, 0]
                    by = kp[m, t, b, 1]
                    sa = sc[m, t, a]
                    sb = sc[m, t, b]
                    if sa != sa or sb != sb:  # NaN score: missing
                        continue
                    s = min(sa, sb)
                    if _valid(ax, ay, s, eps) and np.isfinite(bx) and np.isfinite(by):
                        _draw_limb(plane, H, W, ax, ay, bx, by, sa, s, sig3, s2, s2_64, buf)
    return out2


# --- public API ----------------------------------------------------------------------------------------------
def _as_f32(a: np.ndarray) -> np.ndarray:
    """float32 C-contiguous, without a copy when it already is (inputs are only read)."""
    return np.ascontiguousarray(a, dtype=np.float32)


def render_heatmaps(
    keypoints: np.ndarray,
    scores: np.ndarray,
    out: np.ndarray,
    *,
    with_joints: bool,
    limbs: np.ndarray | None,
    sigma: float = 0.6,
    eps: float = 1e-4,
    use_score: bool = True,
) -> np.ndarray:
    """Render PoseC3D pseudo-heatmaps of one clip into `out` and return it.

    keypoints: (M, T, V, 2) coordinates in output pixels (any float dtype; used as float32 like the anchor)
    scores:    (M, T, V) confidences; use_score=False draws every finite joint with value 1 (the anchor replaces
               the scores by ones, so even score-0 joints are drawn; mark missing joints with NaN coordinates)
    out:       (T, C, H, W) C-contiguous float32, float16 or uint8, C = V * with_joints + L; fully overwritten
    limbs:     (L, 2) joint index pairs in channel order, or None for no limb channels
    eps:       score threshold: 1e-4 as MMAction2 1.x, 1e-3 as PYSKL
    """
    kp, sc = _as_f32(keypoints), _as_f32(scores)
    if kp.ndim != 4 or kp.shape[-1] != 2 or sc.shape != kp.shape[:3]:
        raise ValueError(f"need keypoints (M, T, V, 2) and scores (M, T, V); got {kp.shape}, {sc.shape}")
    _M, T, V = sc.shape
    lim = _NO_LIMBS if limbs is None else np.ascontiguousarray(limbs, dtype=np.int64).reshape(-1, 2)
    if lim.size and (lim.min() < 0 or lim.max() >= V):
        raise ValueError(f"limb joint indices must be in [0, {V}); got {lim.min()}..{lim.max()}")
    n_joint_ch = V if with_joints else 0
    C = n_joint_ch + lim.shape[0]
    if out.dtype not in OUTPUT_DTYPES:
        raise ValueError(f"out dtype must be one of {[str(d) for d in OUTPUT_DTYPES]}; got {out.dtype}")
    if out.ndim != 4 or out.shape[:2] != (T, C):
        raise ValueError(f"out must be (T={T}, C={C}, H, W); got {out.shape}")
    if not (out.flags.c_contiguous and out.flags.writeable):
        raise ValueError("out must be a writeable C-contiguous array")
    if not sigma > 0 or not eps >= 0:
        raise ValueError(f"sigma must be > 0 and eps >= 0; got sigma={sigma}, eps={eps}")
    if not use_score:
        sc = np.where(np.isnan(sc), sc, np.float32(1.0))  # NaN stays a skip; the rest draws with value 1
    H, W = out.shape[2], out.shape[3]
    if T * C == 0 or H * W == 0:
        return out
    planes = (out.view(np.uint16) if out.dtype == np.float16 else out).reshape(T * C, H * W)  # views
    # The anchor's Python float sigma**2: cast to float32 in its joint maths, float64 in its limb maths.
    s2 = float(sigma) ** 2
    sig3 = 3 * float(sigma)
    _render(kp, sc, planes, H, W, n_joint_ch, lim, sig3, np.float32(s2), s2, float(eps))
    return out


def set_threads(n: int | None) -> int:
    """Set numba's thread count for this thread, clamped to [1, NUMBA_NUM_THREADS] (None = all); return it."""
    hi = numba.config.NUMBA_NUM_THREADS
    used = hi if n is None else max(1, min(int(n), hi))
    numba.set_num_threads(used)
    return used
