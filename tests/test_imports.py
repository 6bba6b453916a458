"""Import hygiene: no project module imports one that imports it back (directly or through others), and
`actrec-train --help` loads no reader (h5py, scipy, etl.readers) and not the ETL command line."""

from __future__ import annotations

import subprocess
import sys

from import_graph import ROOT, all_modules, module_imports


def _cycles() -> list[list[str]]:
    graph = {m: module_imports(m) for m in all_modules()}
    found, state, stack = [], {}, []

    def visit(m: str) -> None:
        state[m] = "open"
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            # a package's __init__ is imported by its submodules: parent-package edges are not cycles
            if m.startswith(n + "."):
                continue
            if state.get(n) == "open":
                found.append([*stack[stack.index(n) :], n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in graph:
        if m not in state:
            visit(m)
    return found


def test_no_import_cycles():
    assert _cycles() == []


def test_the_checker_sees_a_real_import():
    assert "etl.heatmaps.kernels" in module_imports("etl.commands.render")


def test_train_help_loads_no_reader():
    code = (
        "import sys\n"
        "from train.cli import app\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('h5py', 'scipy') "
        "or m.startswith('etl.readers') or m == 'etl.cli')\n"
        "print(','.join(bad))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
