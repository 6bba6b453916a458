"""PoseC3D heatmaps rendered with torch on the training device, batched over clips, frames, persons and channels.

The same maps as etl.heatmaps.kernels (MMAction2's GeneratePoseTarget: integer pixel grid, 3-sigma window truncated as
int(), joints skipped below eps, limbs as the distance to the segment with the anchor's projection clamp, a
degenerate limb drawn as the joint gaussian at its first end, max over persons, joints then limbs), within
1e-5 of the numba kernels (tested on the anchor dump and random inputs). Differences: exp is torch's float32
exp (the kernels replicate numpy's float32 exp and the anchor's float64 limb exp bit for bit), and the joint
gaussian is evaluated as a product of its x and y factors.

With `--source keypoints --renderer torch` the loader ships only keypoints (M, T, V, 2) and scores; the maps
are built here, directly in the models' layout (B, C, T, H, W). Coordinates and the arithmetic stay float32
(bf16 coordinates would be 0.25 px apart at 64 px); only the output is cast (bf16 on CUDA).
"""

from __future__ import annotations

import torch

FRAME_CHUNK = 16  # frames per pass: bounds the (B, L, T, H, W) temporaries


def _window(lo: torch.Tensor, hi: torch.Tensor, sig3: float, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[st, ed) as the anchor: st = max(int(lo - 3 sigma), 0), ed = min(int(hi + 3 sigma) + 1, n), int()
    truncating toward 0, in float64 (the anchor's numpy promotes float32 - float to float64)."""
    a = (lo.double() - sig3).clamp(-2.0, n + 1.0)  # clamp first: huge or infinite values stay finite
    b = (hi.double() + sig3).clamp(-2.0, n + 1.0)
    st = torch.trunc(a).clamp(0, n)
    ed = (torch.trunc(b) + 1).clamp(0, n)
    return st.to(lo.dtype), ed.to(lo.dtype)


def _inside(grid: torch.Tensor, st: torch.Tensor, ed: torch.Tensor) -> torch.Tensor:
    """(..., N) bool: grid pixel in [st, ed) for windows st, ed (...)."""
    return (grid >= st[..., None]) & (grid < ed[..., None])


def _finite(kp: torch.Tensor) -> torch.Tensor:
    return torch.isfinite(kp).all(dim=-1)


def _joint_maps(
    x: torch.Tensor, y: torch.Tensor, val: torch.Tensor, gx: torch.Tensor, gy: torch.Tensor, sigma: float
) -> torch.Tensor:
    """Gaussians at (x, y) (...) with peak val (...) (0 where not drawn) -> (..., H, W), zero outside the
    3-sigma window. Evaluated as exp(-dx^2 / 2s^2) * exp(-dy^2 / 2s^2): one exp per row and column."""
    s2 = sigma * sigma
    sig3 = 3 * sigma
    drawn = val > 0
    x0 = torch.where(drawn, x, torch.zeros_like(x))  # NaN/inf of skipped joints must not reach the maps
    y0 = torch.where(drawn, y, torch.zeros_like(y))
    stx, edx = _window(x0, x0, sig3, gx.numel())
    sty, edy = _window(y0, y0, sig3, gy.numel())
    fx = torch.exp(-((gx - x0[..., None]) ** 2) / 2 / s2)  # (..., W)
    fy = torch.exp(-((gy - y0[..., None]) ** 2) / 2 / s2)  # (..., H)
    fx = torch.where(_inside(gx, stx, edx), fx, 0)
    fy = torch.where(_inside(gy, sty, edy), fy, 0) * val[..., None]
    return fy[..., :, None] * fx[..., None, :]


def _limb_maps(
    a: torch.Tensor,
    b: torch.Tensor,
    sa: torch.Tensor,
    s: torch.Tensor,
    gx: torch.Tensor,
    gy: torch.Tensor,
    sigma: float,
) -> torch.Tensor:
    """Segment maps a-b (..., 2) with value s (...) (0 where not drawn) -> (..., H, W)."""
    s2 = sigma * sigma
    sig3 = 3 * sigma
    drawn = s > 0
    zero = torch.zeros_like(a)
    a = torch.where(drawn[..., None], a, zero)
    b = torch.where(drawn[..., None], b, zero)
    ax, ay, bx, by = a[..., 0], a[..., 1], b[..., 0], b[..., 1]
    stx, edx = _window(torch.minimum(ax, bx), torch.maximum(ax, bx), sig3, gx.numel())
    sty, edy = _window(torch.minimum(ay, by), torch.maximum(ay, by), sig3, gy.numel())
    inside = _inside(gy, sty, edy)[..., :, None] & _inside(gx, stx, edx)[..., None, :]  # (..., H, W)
    d2ab = ((ax - bx).double() ** 2 + (ay - by).double() ** 2).float()  # float64 in the anchor, then float32
    degenerate = d2ab < 1  # drawn as the joint gaussian at a with a's score
    d2ab = torch.where(degenerate, torch.ones_like(d2ab), d2ab)[..., None, None]
    X, Y = gx[None, :], gy[:, None]  # (1, W), (H, 1)
    dxa, dya = X - ax[..., None, None], Y - ay[..., None, None]
    dxb, dyb = X - bx[..., None, None], Y - by[..., None, None]
    d2a = dxa * dxa + dya * dya  # (..., H, W)
    d2b = dxb * dxb + dyb * dyb
    t = (d2a - d2b + d2ab) / 2 / d2ab
    lx = X - (ax[..., None, None] + t * (bx - ax)[..., None, None])
    ly = Y - (ay[..., None, None] + t * (by - ay)[..., None, None])
    d2 = torch.where(t <= 0, d2a, torch.where(t >= 1, d2b, lx * lx + ly * ly))
    limb = torch.where(inside, torch.exp(-d2 / 2 / s2) * s[..., None, None], 0)
    if degenerate.any():
        joint = _joint_maps(ax, ay, torch.where(degenerate, sa, 0), gx, gy, sigma)
        limb = torch.where(degenerate[..., None, None], joint, limb)
    return limb


def render_torch(
    keypoints: torch.Tensor,
    scores: torch.Tensor,
    size_hw: tuple[int, int],
    *,
    with_joints: bool,
    limbs: list[tuple[int, int]] | None,
    sigma: float = 0.6,
    eps: float = 1e-4,
    out_dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Heatmaps of a batch of clips.

    keypoints: (B, M, T, V, 2) in output pixels (NaN = missing; persons padded with NaN or score 0)
    scores:    (B, M, T, V)
    returns    (B, C, T, H, W) of out_dtype on the keypoints' device, C = V * with_joints + len(limbs),
               channels joints first, then limbs in order (as `actrec-etl render`).
    """
    kp = keypoints.float()
    sc = scores.float()
    B, M, T, V, _ = kp.shape
    H, W = size_hw
    dev = kp.device
    gx = torch.arange(W, device=dev, dtype=torch.float32)
    gy = torch.arange(H, device=dev, dtype=torch.float32)
    lim = torch.as_tensor(limbs if limbs is not None else [], dtype=torch.long, device=dev).reshape(-1, 2)
    C = (V if with_joints else 0) + len(lim)
    out = torch.zeros(B, C, T, H, W, dtype=out_dtype, device=dev)
    if B * C * T * H * W == 0:
        return out
    kp = kp.permute(0, 1, 3, 2, 4)  # (B, M, V, T, 2): channel before frame, as the output
    sc = sc.permute(0, 1, 3, 2)  # (B, M, V, T)
    ok = _finite(kp) & (sc >= eps)  # (B, M, V, T); NaN scores fail the comparison
    for t0 in range(0, T, FRAME_CHUNK):
        t1 = min(t0 + FRAME_CHUNK, T)
        k, s_, v = kp[:, :, :, t0:t1], sc[:, :, :, t0:t1], ok[:, :, :, t0:t1]
        acc = torch.zeros(B, C, t1 - t0, H, W, dtype=torch.float32, device=dev)
        for m in range(M):
            c = 0
            if with_joints:
                val = torch.where(v[:, m], s_[:, m], 0)  # (B, V, t)
                acc[:, :V] = torch.maximum(
                    acc[:, :V], _joint_maps(k[:, m, ..., 0], k[:, m, ..., 1], val, gx, gy, sigma)
                )
                c = V
            if len(lim):
                a, b = k[:, m, lim[:, 0]], k[:, m, lim[:, 1]]  # (B, L, t, 2)
                sa, sb = s_[:, m, lim[:, 0]], s_[:, m, lim[:, 1]]
                smin = torch.minimum(sa, sb)
                drawn = _finite(a) & _finite(b) & (smin >= eps)  # NaN in either score fails
                maps = _limb_maps(a, b, torch.where(drawn, sa, 0), torch.where(drawn, smin, 0), gx, gy, sigma)
                acc[:, c:] = torch.maximum(acc[:, c:], maps)
        out[:, :, t0:t1] = acc.to(out_dtype)
    return out


def quantize_like(x: torch.Tensor, dtype: str) -> torch.Tensor:
    """The float values a store of `dtype` would hold (what the numba path ships and evaluation reads):
    uint8 -> min(255, floor(v * 255 + 0.5)) / 255, float16 -> rounded to half. In place where possible."""
    if dtype == "uint8":
        return x.mul_(255).add_(0.5).floor_().clamp_(max=255).div_(255)
    if dtype == "float16":
        return x.half().to(x.dtype)
    return x
