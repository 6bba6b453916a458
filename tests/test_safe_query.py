"""Clip-selection expressions are checked, not executed: the documented queries work, code never runs."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from etl.cli import app
from etl.common.errors import ActrecError
from etl.stores.cliptable import CLIPS_FILE, query_clips
from train.sources.loading import select_clips

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def clip_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "clip_id": ["a", "b", "c", "d", "e"],
            "label": [0, 1, 0, 2, 1],
            "label_name": ["wave", "drink", "wave", "pick up", "drink"],
            "split": ["train", "test", "train", None, "train"],
            "n_frames": [10, 40, 70, 5, 33],
            "n_persons": [1, 2, 1, 3, 2],
            "viewpoint": ["front", "back", None, "front", "back"],
            "subject": [1, 2, 3, 1, 2],
            "camera id": [0, 1, 0, 1, 0],
        }
    )


def fake_store(tmp_path: Path) -> Path:
    store = tmp_path / "store.zarr"
    store.mkdir()
    clip_table().to_parquet(store / CLIPS_FILE, index=False)
    return store


# every documented or configured expression (README, docs, params.yaml, CLI defaults) and the pandas syntax
# a user may know: the same rows as DataFrame.query on a trusted table
SAME_AS_PANDAS = [
    "split == 'test'",
    "split == 'train'",
    "split == 'test' and label_name == 'wave'",
    "split == 'test' and n_persons > 1",
    "split == 'train' and viewpoint != 'back'",
    "(split == 'train') & (n_frames > 20)",
    "(split == 'train') | (n_persons >= 3)",
    "~(split == 'train')",
    "not split == 'train'",
    "split in ['train', 'test']",
    "split not in ('train',)",
    "split == ['train', 'test']",
    "label_name.str.contains('wa')",
    "label_name.str.startswith('dr')",
    "label_name.str.endswith('up')",
    "subject.isin([1, 3])",
    "n_frames.between(10, 40)",
    "viewpoint.isna()",
    "viewpoint.notna() and subject != 2",
    "10 < n_frames <= 70",
    "n_frames * 2 - 1 > 60",
    "n_frames / n_persons >= 20",
    "n_frames % 2 == 0",
    "n_frames ** 2 > 1000",
    "-n_frames < -30",
    "`camera id` == 1",
    'label_name == "pick up"',
    "label == 1 or label == 2",
]


@pytest.mark.parametrize("expr", SAME_AS_PANDAS)
def test_documented_and_pandas_syntax_select_the_same_rows(expr):
    df = clip_table()
    assert list(query_clips(df, expr).clip_id) == list(df.query(expr).clip_id)


def test_configured_where_expressions_still_work():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    found = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key.endswith("where") and isinstance(value, str):
                    found.append(value)
                walk(value)

    walk(params)
    assert found, "params.yaml has a where expression"
    for expr in found:
        query_clips(clip_table(), expr)
    readme = (ROOT / "README.md").read_text()
    assert "split == 'train' and viewpoint != 'back'" in readme
    assert "split == 'test' and n_persons > 1" in readme


BYPASSES = [
    "(split == 'train') & (@pd.io.common.os.system('touch {marker}') == 0)",
    "@pd.read_pickle('{marker}')",
    "@df.to_csv('{marker}')",
    "@Path('{marker}').touch()",
    "split == 'train' and @os.system('touch {marker}')",
    "__import__('os').system('touch {marker}') == 0",
    "__import__('pathlib').Path('{marker}').touch()",
    "split.__class__.__init__.__globals__['os'].system('touch {marker}')",
    "n_frames.__class__",
    "clip_id.to_csv('{marker}')",
    "clip_id.str.cat('{marker}')",
    "open('{marker}', 'w')",
    "eval('1')",
    "getattr(split, 'to_csv')('{marker}')",
    "[c for c in ().__class__.__base__.__subclasses__()]",
    "(lambda: 1)() == 1",
    "split[0] == 't'",
    "{{'a': 1}}",
    "f'{{split}}' == 'x'",
    "__builtins__",
    "_x_ == 1",
    "(a := 1) == 1",
]


@pytest.mark.parametrize("template", BYPASSES)
def test_bypasses_are_refused_and_nothing_runs(template, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "PWNED"
    expr = template.format(marker=marker)
    with pytest.raises(ActrecError, match="clip query"):
        query_clips(clip_table(), expr)
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_cli_query_bypass_exits_1_and_runs_nothing(tmp_path, monkeypatch):
    store = fake_store(tmp_path)
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "F"
    expr = f"(split == 'train') & (@pd.io.common.os.system('id > {marker}') == 0)"
    result = runner.invoke(app, ["query", str(store), expr, "--count"])
    assert result.exit_code == 1
    assert "'@' (local variables) is not allowed" in result.output
    assert not marker.exists()
    ok = runner.invoke(app, ["query", str(store), "split == 'train'", "--count"])
    assert ok.exit_code == 0
    assert ok.output.strip() == "3"


@pytest.mark.parametrize("where", [BYPASSES[0], BYPASSES[5], BYPASSES[7]])
def test_train_and_evaluate_selection_refuses_code(where, tmp_path, monkeypatch):
    # fit --train-where/--val-where and evaluate --where all select through train.sources.loading.select_clips
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "PWNED"
    store = SimpleNamespace(table=clip_table(), path=tmp_path / "h.zarr")
    with pytest.raises(ActrecError, match="bad clip query"):
        select_clips(store, where.format(marker=marker))
    assert not marker.exists()
    assert list(select_clips(store, "split == 'test'").clip_id) == ["b"]


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("10 ** 10 ** 10 > 1", "exponents above 64"),
        ("((10 ** 60) ** 60) ** 60 > 1", "too large"),
        ("label_name * 1000000000 == 'x'", "arithmetic needs numbers"),
        ("'a' * 1000000000 == label_name", "arithmetic needs numbers"),
        ("n_frames > " + "1 + " * 700 + "1", "longer than 2000"),
        ("n_frames > " + "1 + " * 200 + "1", "nested deeper than 64"),
        ("n_frames > " + "-" * 100 + "1", "nested deeper than 64"),
        ("nosuch == 1", "unknown column 'nosuch'"),
        ("n_frames", "must be a boolean condition"),
        ("n_frames & n_persons", "need conditions"),
        ("split ==", "not a valid expression"),
        ("label_name.str.contains(split)", "must be literal values"),
        ("n_frames.between(1, 2, extra=3)", "no keyword 'extra'"),
        ("split.str.contains", "attribute access"),
    ],
)
def test_expensive_or_wrong_expressions_get_one_line_errors(expr, message):
    with pytest.raises(ActrecError, match=message) as info:
        query_clips(clip_table(), expr)
    assert "\n" not in str(info.value)


def test_missing_values_select_nothing():
    df = clip_table()
    assert list(query_clips(df, "viewpoint.str.contains('ro')").clip_id) == ["a", "d"]
    assert list(query_clips(df, "split != 'train'").clip_id) == ["b", "d"]


def test_text_column_against_a_number_warns_or_says_why(tmp_path):
    import warnings

    from etl.common.errors import ActrecWarning

    df = pd.DataFrame({"camera": ["1", "3", "cam2"], "speed": ["fast", "1.5", "2"], "n": [1, 3, 5]})
    with pytest.warns(ActrecWarning, match=r"column 'camera' holds text .* write camera == '3'"):
        assert len(query_clips(df, "camera == 3")) == 0
    with pytest.raises(ActrecError, match=r"column 'speed' holds text .* cannot be ordered"):
        query_clips(df, "speed > 1.0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert (
            len(query_clips(df, "n == 3 and camera == '3'")) == 1
        )  # numbers vs numbers, text vs text: silent


def test_cli_query_warns_in_one_line_when_text_meets_a_number(tmp_path):
    store = fake_store(tmp_path)
    result = runner.invoke(app, ["query", str(store), "viewpoint == 3", "--count"])
    assert result.exit_code == 0
    lines = result.output.strip().splitlines()
    assert lines[-1] == "0"
    warning = [line for line in lines if line.startswith("warning:")]
    assert len(warning) == 1
    assert "column 'viewpoint' holds text" in warning[0]
