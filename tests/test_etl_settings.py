"""One source of truth per ETL setting: each `actrec-etl ingest`/`render` option defaults to the field of the
config object the library uses (ReadOptions, RenderSpec) or to the library function's own default, and
params.yaml's render/ingest values are those defaults except where it says why not."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest
import typer.main
import yaml
from fixtures_bench import bench_module

from etl.cli import app
from etl.commands.ingest import ingest
from etl.commands.render import render
from etl.heatmaps.spec import RenderSpec
from etl.readers import ReadOptions

ROOT = Path(__file__).resolve().parents[1]
# CLI option -> ReadOptions field, where the names differ
_READ_OPTION_FIELD = {"labels": "labels_csv", "classes": "classes_file"}
# params.yaml values that differ from the defaults on purpose (its comments say why)
_PARAMS_DIFFER = {"render": {"size", "threads"}, "ingest": {"sources", "format", "flags"}}


def _options(command: str) -> dict:
    click_command = typer.main.get_command(app).commands[command]
    return {p.name: p.default for p in click_command.params if not p.required}


def _field_defaults(config) -> dict:
    return {f.name: f.default for f in dataclasses.fields(config) if f.default is not dataclasses.MISSING}


def _function_defaults(fn) -> dict:
    return {n: p.default for n, p in inspect.signature(fn).parameters.items() if p.default is not p.empty}


def test_render_options_default_to_the_render_spec_fields():
    options, fields = _options("render"), _field_defaults(RenderSpec)
    assert set(fields) <= set(options), f"no option for {sorted(set(fields) - set(options))}"
    assert {name: options[name] for name in fields} == fields
    rest = {name: value for name, value in options.items() if name not in fields}
    assert rest == {name: _function_defaults(render)[name] for name in rest}  # threads, scheduler, overwrite


def test_ingest_options_default_to_the_read_options_fields():
    options, fields = _options("ingest"), _field_defaults(ReadOptions)
    mapped = {_READ_OPTION_FIELD.get(name, name): value for name, value in options.items()}
    in_fields = {name: value for name, value in mapped.items() if name in fields}
    assert set(in_fields) == set(fields), f"no option for {sorted(set(fields) - set(in_fields))}"
    assert in_fields == fields
    library = _function_defaults(ingest)
    for name in ("nan_policy", "strict"):  # handed to ingest() as they are
        assert options[name] == library[name], name
    assert options["fmt"] == "auto"
    assert options["to_layout"] == library["to_layout"]


def test_a_changed_default_would_be_seen():
    """The comparison above is not vacuous: the options hold the values the dataclasses hold."""
    options = _options("render")
    assert options["size"] == 64
    assert options["codec"] == "lz4"
    assert options["level"] is None
    assert _options("ingest")["max_frames"] == ReadOptions.__dataclass_fields__["max_frames"].default


@pytest.mark.parametrize("stage", ["render", "ingest"])
def test_params_yaml_uses_the_defaults_unless_it_says_why(stage):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())[stage]
    options = _options(stage)
    resolved = {"level": RenderSpec().level}  # the codec's default level, written out
    for key, value in params.items():
        if key in _PARAMS_DIFFER[stage]:
            continue
        name = key.replace("-", "_")
        assert value == resolved.get(name, options[name]), f"params.yaml {stage}.{key}"
    lines = (ROOT / "params.yaml").read_text().splitlines()
    block = lines[lines.index(f"{stage}:") :]
    block = block[: block.index("")]  # the stage's section ends at the first blank line
    for key in _PARAMS_DIFFER[stage]:  # each deliberate difference is explained next to it
        line = next(line for line in block if line.strip().startswith(f"{key}:"))
        assert "#" in line, f"params.yaml {stage}.{key}: say why it differs from the default"


def test_the_loader_benchmark_measures_the_default_store():
    """bench_loader once kept its own codec table and defaulted to zstd: run_all.sh measured zstd twice."""
    bench = bench_module("bench_loader")
    defaults = vars(bench.parser().parse_args([]))
    assert defaults["codec"] == RenderSpec().codec
    choices = next(a.choices for a in bench.parser()._actions if a.dest == "codec")
    assert tuple(choices) == ("lz4", "zstd", "none")
    run_all = (ROOT / "bench" / "run_all.sh").read_text()
    loader_runs = [line for line in run_all.splitlines() if line.startswith("$PY bench/bench_loader.py")]
    codecs = [
        line.split("--codec ")[1].split()[0] if "--codec" in line else defaults["codec"]
        for line in loader_runs
    ]
    assert len(codecs) == len(set(codecs)) == 2, loader_runs  # the default store, then the other codec


def test_the_render_benchmark_uses_the_default_size():
    bench = bench_module("bench_render")
    assert bench.parser().parse_args([]).size == RenderSpec().size
