"""docs/results.md's claims that code can check: the README's Penn Action table is the one in docs/results.md,
and bench/fit_clamped_crops.py (the diagnostic behind "Why c3d is 9 points below") draws the old, clamped crops
with the statistics the docs quote."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fixtures_bench import bench_module

ROOT = Path(__file__).resolve().parents[1]


def _first_table_after(text: str, heading: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == heading)
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            rows.append(line.strip())
        elif rows:
            break
    assert rows, f"no table after {heading!r}"
    return rows


def test_the_readme_penn_table_is_the_results_table():
    readme = _first_table_after((ROOT / "README.md").read_text(), "## Results on Penn Action")
    results = _first_table_after((ROOT / "docs" / "results.md").read_text(), "## Numbers")
    assert readme == results


def test_clamped_crops_have_the_statistics_the_docs_quote():
    """The old rule: mean area 0.767 and 30% of crops spanning a full side (redrawn: 0.729 and 8%,
    tests/test_onfly.py::test_crops_are_redrawn_like_mmaction)."""
    fcc = bench_module("fit_clamped_crops")
    g = torch.Generator().manual_seed(0)
    w, h, cx, cy = fcc.clamped_boxes(50_000, generator=g, area=(0.56, 1.0), ratio=(3 / 4, 4 / 3))
    assert 0.76 < float((w * h).mean()) < 0.775
    assert 0.28 < float(((w == 1) | (h == 1)).float().mean()) < 0.32
    # inside the image: centre +- half side within [-1, 1]
    assert bool(((cx - w).ge(-1 - 1e-6) & (cx + w).le(1 + 1e-6)).all())
    assert bool(((cy - h).ge(-1 - 1e-6) & (cy + h).le(1 + 1e-6)).all())


def test_a_whole_image_crop_is_the_identity_and_a_flip_swaps_channels():
    fcc = bench_module("fit_clamped_crops")
    x = torch.rand(3, 4, 2, 8, 8)  # (B, C, T, S, S)
    g = torch.Generator().manual_seed(1)
    same = fcc.clamped_crop_flip(
        x, size=8, flip_permutation=None, generator=g, area=(1.0, 1.0), ratio=(1.0, 1.0)
    )
    torch.testing.assert_close(same, x, atol=1e-6, rtol=0)
    flipped = fcc.clamped_crop_flip(
        x,
        size=8,
        flip_permutation=[1, 0, 3, 2],
        generator=g,
        area=(1.0, 1.0),
        ratio=(1.0, 1.0),
        flip_prob=1.0,
    )
    torch.testing.assert_close(flipped, x.flip(-1)[:, [1, 0, 3, 2]], atol=1e-6, rtol=0)


def test_the_diagnostic_replaces_the_crop_the_trainer_calls(monkeypatch):
    """fit_clamped_crops patches train.sources' name: the one the heatmap source's batch transform calls."""
    import train.sources

    source = Path(train.sources.__file__).read_text()
    assert "return random_resized_crop_flip(" in source
    fcc = bench_module("fit_clamped_crops")
    monkeypatch.setattr(train.sources, "random_resized_crop_flip", train.sources.random_resized_crop_flip)
    with pytest.raises(SystemExit) as exc:
        fcc.main(["--help"])
    assert exc.value.code == 0
    assert train.sources.random_resized_crop_flip is fcc.clamped_crop_flip
