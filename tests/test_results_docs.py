"""docs/results.md's claims that code can check: the README's Penn Action table is the one in docs/results.md,
the bench scripts it cites exist (or it names the commit where they lived), and no bench script monkeypatches."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

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


def test_bench_scripts_the_docs_cite_exist_or_name_the_commit_they_lived_at():
    """docs/results.md keeps the numbers of diagnostics that were removed (fit_clamped_crops, fit_variant): each
    bench script it names exists, or the docs name the commit where it can still be run."""
    text = (ROOT / "docs" / "results.md").read_text()
    named = set(re.findall(r"bench/(\w+\.(?:py|sh))", text))
    assert {"fit_clamped_crops.py", "fit_variant.py", "train_penn.sh"} <= named
    for name in named - {p.name for p in (ROOT / "bench").iterdir()}:
        paragraph = next(p for p in text.split("\n\n") if f"bench/{name}" in p)
        assert "1b8ee8e" in paragraph, (
            f"docs/results.md names bench/{name}, which is gone, without its commit"
        )


def _monkeypatches(tree: ast.Module) -> list[str]:
    """Assignments into project modules or their objects: `train.x.name = ...`, `alias.name = ...`,
    `NAME[...] = ...` / `NAME[...].update(...)` where alias / NAME was imported from etl or train."""
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {
                a.asname or a.name.split(".")[0] for a in node.names if a.name.split(".")[0] in PROJECT
            }
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PROJECT:
            imported |= {a.asname or a.name for a in node.names}
    found = []
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else []
        targets += [node.target] if isinstance(node, ast.AugAssign | ast.AnnAssign) else []
        for target in targets:
            if isinstance(target, ast.Attribute | ast.Subscript):
                base = target.value
                while isinstance(base, ast.Attribute | ast.Subscript):
                    base = base.value
                if isinstance(base, ast.Name) and base.id in imported:
                    found.append(ast.unparse(target))
    return found


PROJECT = ("etl", "train")


def test_bench_scripts_use_options_never_monkeypatching():
    """A bench script changes what fit does through real options or config fields, never by replacing the
    project's functions or mutating its tables (PRESETS)."""
    for path in sorted((ROOT / "bench").glob("*.py")):
        assert _monkeypatches(ast.parse(path.read_text())) == [], path.name
    caught = "import train.sources\nfrom train.models import PRESETS\ntrain.sources.f = g\nPRESETS['x']['c3d'] = {}\n"
    assert _monkeypatches(ast.parse(caught)) == ["train.sources.f", "PRESETS['x']['c3d']"]


def test_no_placeholder_is_left_in_the_docs():
    """A line that is one upper-case word (e.g. DEFAULTS_TABLES: a table to be pasted in) or a TODO/TBD marker is
    text nobody finished; the docs are claims, so none may ship."""
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            assert not re.fullmatch(r"[A-Z][A-Z0-9_]{3,}", line.strip()), (
                f"{path.name}:{n}: placeholder {line!r}"
            )
            assert not re.search(r"\b(TODO|TBD|FIXME|XXX)\b", line), f"{path.name}:{n}: {line.strip()!r}"


def test_a_fusions_wall_time_sums_its_inputs_fits_through_fusions_of_fusions(tmp_path, monkeypatch):
    """bench/results_table.py: a fusion's row reads the sum of its inputs' fit times, a fused input counting its
    own inputs; relative input paths are from where `fuse` ran; one unknown input makes the sum unknown."""
    from fixtures_bench import bench_module

    table = bench_module("results_table")
    monkeypatch.chdir(tmp_path)
    for name, seconds in (("j", 400), ("b", 420), ("c3d", 1230)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "fit_wall_s.txt").write_text(str(seconds))
    (tmp_path / "nofit").mkdir()

    def fusion(folder: str, *inputs: str) -> None:
        (tmp_path / folder).mkdir()
        ev = {"inputs": [{"eval": f"{i}/eval.json", "weight": 1} for i in inputs]}
        (tmp_path / folder / "eval.json").write_text(json.dumps(ev))

    fusion("jb", "j", "b")
    fusion("jb_c3d", "jb", str(tmp_path / "c3d"))  # an absolute path too
    fusion("unknown", "jb", "nofit")
    assert table.wall_s(Path("jb")) == 820
    assert table.wall_s(Path("jb_c3d")) == 2050
    assert table.wall_s(Path("unknown")) is None
    assert table.wall_s(Path("nofit")) is None


def test_results_table_names_plots_by_the_dataset_folder(tmp_path):
    """Plots of runs/utd/... and runs/penn/... go to docs/img under different names (utd_*, penn_*)."""
    from fixtures_bench import bench_module

    table = bench_module("results_table")
    assert table.img_prefix(Path("runs/utd/coordinates")) == "utd"
    assert table.img_prefix(tmp_path / "jhmdb" / "heatmaps") == "jhmdb"
