"""One source of truth per training setting: `actrec-train fit` has one option per FitConfig field, each with
the field's default, and the config is built from the parsed options field by field; params.yaml's `train:`
block names only FitConfig fields, with values of the fields' types."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import typer.main
import yaml
from typer.testing import CliRunner

import train.fit
from train.cli import app
from train.config import FitConfig

ROOT = Path(__file__).resolve().parents[1]


def _params(command: str) -> dict:
    return {p.name: p for p in typer.main.get_command(app).commands[command].params}


def _fields() -> dict:
    return {f.name: f for f in dataclasses.fields(FitConfig)}


def test_fit_has_one_option_per_config_field_with_its_default():
    params, fields = _params("fit"), _fields()
    assert set(params) == set(fields), (
        f"options without a field: {sorted(set(params) - set(fields))}; "
        f"fields without an option: {sorted(set(fields) - set(params))}"
    )
    assert params["store"].required
    assert fields["store"].default is dataclasses.MISSING
    for name, field in fields.items():
        if name != "store":
            assert params[name].default == field.default, name


def test_step_size_reaches_the_config(monkeypatch, tmp_path):
    """Each parsed option lands in its field (--step-size had no option once: `--schedule step` used 30)."""
    seen = {}

    def fake_fit(cfg, **_):
        seen["cfg"] = cfg
        return {}

    monkeypatch.setattr(train.fit, "fit", fake_fit)
    args = ["fit", str(tmp_path), "--schedule", "step", "--step-size", "7", "--out", str(tmp_path / "r")]
    result = CliRunner().invoke(app, [*args, "--lr", "0.25", "--seed", "3", "--no-augment"])
    assert result.exit_code == 0, result.output
    cfg = seen["cfg"]
    assert (cfg.schedule, cfg.step_size, cfg.lr, cfg.seed, cfg.augment) == ("step", 7, 0.25, 3, False)
    assert cfg.out == str(tmp_path / "r")
    assert cfg.store == str(tmp_path)  # paths kept as text
    assert cfg.epochs == FitConfig.epochs
    assert cfg.model == FitConfig.model  # untouched: the defaults


def test_params_yaml_train_block_names_config_fields():
    train_params = yaml.safe_load((ROOT / "params.yaml").read_text())["train"]
    fields = _fields()
    assert set(train_params) <= set(fields), (
        f"not FitConfig fields: {sorted(set(train_params) - set(fields))}"
    )
    for name, value in train_params.items():
        default = fields[name].default
        if default is not None:
            assert isinstance(value, type(default)) or (
                isinstance(default, float) and isinstance(value, int)
            ), name


@pytest.mark.parametrize("command", ["fit", "evaluate", "predict"])
def test_device_defaults_to_auto_everywhere(command):
    assert _params(command)["device"].default == "auto"
