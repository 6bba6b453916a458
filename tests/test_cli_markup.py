"""Text from the user or a file (expressions, paths, labels, splits, reasons) is printed verbatim by both command
lines: never parsed as rich markup (a '[/x]' used to crash with MarkupError, a '[bold]' vanished)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import typer
from fixtures_pose import confidences, moving_poses, write_npz_clip
from rich.console import Console
from typer.testing import CliRunner

from etl.cli import app
from etl.cli import cli_errors as etl_cli_errors
from etl.common.errors import ActrecError
from train.cli import app as train_app

runner = CliRunner()

LABEL_CLOSE = "[/x]wave"
LABEL_BOLD = "[bold]drink[/bold]"
SPLIT = "[/train]"


def _clips(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for i, label in enumerate([LABEL_CLOSE, LABEL_BOLD, LABEL_BOLD]):
        write_npz_clip(
            folder / f"c{i}.npz",
            moving_poses(1, 6, 17, seed=i),
            confidences((1, 6, 17), seed=i),
            label_name=label,
            split=SPLIT if i else "[red]test",
        )
    np.savez(folder / "[bold]broken.npz", nothing=np.zeros(3))  # a reject whose source and reason hold markup
    return folder


def test_ingest_info_query_print_markup_verbatim(tmp_path, monkeypatch):
    wide = Console(soft_wrap=True, width=400)  # tables on one line each
    monkeypatch.setattr("etl.cli.console", wide)
    monkeypatch.setattr("etl.common.cli_helpers.console", wide)
    src = _clips(tmp_path / "in[bold]put")
    out = tmp_path / "out[/bold].zarr"
    result = runner.invoke(app, ["ingest", str(src), "--format", "npz", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "4 read, 3 kept, 1 rejected" in result.output
    assert f"-> {out}" in result.output  # the --out path, [/bold] included
    assert "[bold]broken" in result.output  # the reject table: source and reason
    info = runner.invoke(app, ["info", str(out)])
    assert info.exit_code == 0, info.output
    for text in (str(out), LABEL_CLOSE, LABEL_BOLD, SPLIT, "[red]test"):
        assert text in info.output
    query = runner.invoke(
        app,
        ["query", str(out), "label_name == '[bold]drink[/bold]'", "--columns", "clip_id,label_name,split"],
    )
    assert query.exit_code == 0, query.output
    assert "2 clips match \"label_name == '[bold]drink[/bold]'\"" in query.output
    assert LABEL_BOLD in query.output
    assert SPLIT in query.output
    count = runner.invoke(app, ["query", str(out), f"split == '{SPLIT}'", "--count"])
    assert count.exit_code == 0
    assert count.output.strip() == "2"


def test_error_messages_keep_markup_like_text(tmp_path):
    store = tmp_path / "s[/bold].zarr"  # a folder "s[" holding "bold].zarr": the path reads "[/bold]"
    store.mkdir(parents=True)
    result = runner.invoke(app, ["query", str(store), "[/x]"])
    assert result.exit_code == 1
    assert f"error: {store} has no clip table" in result.output  # the real message, not a MarkupError
    assert "Traceback" not in result.output
    assert "MarkupError" not in result.output


def test_bad_query_text_shown_verbatim(tmp_path):
    src = _clips(tmp_path / "in")
    out = tmp_path / "kp.zarr"
    assert runner.invoke(app, ["ingest", str(src), "--format", "npz", "--out", str(out)]).exit_code == 0
    result = runner.invoke(app, ["query", str(out), "[/x]"])
    assert result.exit_code == 1
    assert "error: bad clip query '[/x]'" in result.output
    bold = runner.invoke(app, ["query", str(out), "[bold]x[/bold] == 1"])
    assert bold.exit_code == 1
    assert "'[bold]x[/bold] == 1'" in bold.output


def test_error_handler_prints_any_message_verbatim(capsys):
    @etl_cli_errors
    def fails():
        raise ActrecError("label [/x] and [bold]bold[/bold] in /data/[/bold]/a.json")

    with pytest.raises(typer.Exit):  # the handler's exit (a click exception, not SystemExit)
        fails()
    err = capsys.readouterr().err
    assert "error: label [/x] and [bold]bold[/bold] in /data/[/bold]/a.json" in err


def test_train_cli_error_with_markup_path(tmp_path):
    ckpt = tmp_path / "[/bold]model.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"")
    store = tmp_path / "[bold]h.zarr"
    store.mkdir()
    result = runner.invoke(train_app, ["evaluate", str(ckpt), str(store), "--where", "[/x]"])
    assert result.exit_code == 1, result.output
    assert "MarkupError" not in result.output
    assert "Traceback" not in result.output
    assert "[/bold]model.pt" in result.output or "[bold]h.zarr" in result.output
