"""The project's import graph, read statically (ast): which project modules a module imports, top-level and
inside functions (lazy imports run too). Used by test_dvc_deps.py and test_imports.py."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("etl", "train")
CLI_MODULES = {"actrec-etl": "etl.cli", "actrec-train": "train.cli"}


def module_file(name: str) -> Path | None:
    """etl.readers.h5 -> etl/readers/h5.py; etl.readers -> etl/readers/__init__.py; None outside the project."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imported_modules(nodes: list[ast.AST], current: str, is_package: bool) -> set[str]:
    """Project modules imported anywhere in `nodes` (a `from pkg import name` counts pkg.name when that is a
    module, else pkg)."""
    found: set[str] = set()
    package = current if is_package else current.rpartition(".")[0]
    for node in (n for top in nodes for n in ast.walk(top)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                found.update(".".join(parts[: i + 1]) for i in range(len(parts)))  # parents run too
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            parts = source.split(".")
            found.update(".".join(parts[: i + 1]) for i in range(len(parts)))
            for alias in node.names:
                if module_file(f"{source}.{alias.name}") is not None:
                    found.add(f"{source}.{alias.name}")
    return {m for m in found if module_file(m) is not None}


def module_imports(name: str) -> set[str]:
    """The project modules that module `name` imports (anywhere in it)."""
    path = module_file(name)
    return imported_modules([ast.parse(path.read_text())], name, path.name == "__init__.py") - {name}


def all_modules() -> list[str]:
    return sorted(_module_name(p) for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def closure(start: set[str]) -> set[Path]:
    seen: set[str] = set()
    todo = list(start)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_file(name)
        tree = ast.parse(path.read_text())
        todo.extend(imported_modules([tree], name, path.name == "__init__.py") - seen)
    return {module_file(m) for m in seen}


def command_closure(cli: str, command: str) -> set[Path]:
    """The files `actrec-xxx COMMAND` can import: the CLI module's top level + that command's function."""
    path = module_file(CLI_MODULES[cli])
    tree = ast.parse(path.read_text())
    top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    name = command.replace("-", "_")
    func = functions.get(name)
    if func is None:  # @app.command("demo-data") on a function named otherwise
        for f in functions.values():
            for dec in f.decorator_list:
                if isinstance(dec, ast.Call) and dec.args and getattr(dec.args[0], "value", None) == command:
                    func = f
    assert func is not None, f"{cli} has no command {command}"
    cli_name = CLI_MODULES[cli]
    start = {cli_name} | imported_modules([*top, func], cli_name, False)
    # the CLI module's own top-level imports count, its other commands' lazy imports do not
    files = closure(start - {cli_name}) | {path}
    return files
