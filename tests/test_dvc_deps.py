"""Each DVC stage's code `deps` are exactly the project modules its command imports (statically, transitively).

A stage that omits a module it runs is not rerun when that module changes (a stale result); one that lists a
module it never imports reruns for nothing. The closure starts at the command's function in the CLI module
(its lazy imports) plus the CLI module's top-level imports, and follows every import of each project module
(top-level and inside functions, since lazy imports run too).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from import_graph import ROOT, _module_name, command_closure


def listed_code(deps: list[str]) -> set[Path]:
    """The .py files a stage lists (a folder stands for every .py file under it)."""
    files: set[Path] = set()
    for dep in deps:
        if dep.startswith(("data/", "runs/", "$")):
            continue
        path = ROOT / dep
        if path.is_dir():
            files.update(path.rglob("*.py"))
        elif path.suffix == ".py":
            files.add(path)
    return files


def _stages():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        body = stage.get("do", stage)
        cli, command = body["cmd"].split()[:2]
        yield name, cli, command, body.get("deps", [])


@pytest.mark.parametrize(("stage", "cli", "command", "deps"), list(_stages()), ids=lambda v: str(v)[:20])
def test_stage_deps_are_the_import_closure_of_its_command(stage, cli, command, deps):
    needed = {p.relative_to(ROOT).as_posix() for p in command_closure(cli, command)}
    listed = {p.relative_to(ROOT).as_posix() for p in listed_code(deps)}
    missing, extra = sorted(needed - listed), sorted(listed - needed)
    assert not missing, f"{stage}: add to deps {missing}; remove from deps {extra}"
    assert not extra, f"{stage}: add to deps {missing}; remove from deps {extra}"


def test_the_closure_follows_lazy_and_relative_imports(tmp_path):
    """The checker itself: a lazy import inside a function and a relative import are both found."""
    files = command_closure("actrec-etl", "render")
    names = {_module_name(p) for p in files}
    assert {"etl.cli", "etl.commands.render", "etl.heatmaps.kernels"} <= names
    assert "etl.commands.demo_data" not in names  # another command's lazy import does not count
