"""The DVC pipeline (dvc.yaml, params.yaml, .dvc/) end to end, on a copy of the repository with a TINY config.

The copy holds the files git would commit (tracked + untracked, not ignored), in a fresh git repo with a local
identity; DVC keeps its index inside the copy (core.site_cache_dir) and sends no analytics. The commands the
stages run (actrec-etl, actrec-train) come from the venv of the Python running the tests.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from etl import pipeline_report

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DVC = BIN / "dvc"
MODELS = ("c3d", "cnn_lstm", "cnn_lstm_attn")
STAGES = (
    "demo_data",
    "ingest",
    "render",
    *(f"train@{m}" for m in MODELS),
    *(f"evaluate@{m}" for m in MODELS),
)

# seconds per stage: 2 subjects x 1 rep (16 clips), 16 px, 4 frames, tiny models, 1 epoch, no worker processes
TINY = {
    "demo_data": {"subjects": 2, "reps": 1, "seed": 1},
    "render": {"size": 16, "threads": 1},
    "train": {
        "preset": "tiny",
        "epochs": 1,
        "clip_len": 4,
        "batch_size": 4,
        "input_size": 16,
        "workers": 0,
        "device": "cpu",
    },
    "evaluate": {"clips": 1, "flip": False, "workers": 0},
}


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))
    env.pop("DVC_SITE_CACHE_DIR", None)  # the copy's own config says where
    return env


def run(args, cwd: Path, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout
    )
    if check and done.returncode != 0:
        raise AssertionError(f"{args} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def dvc(*args, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    return run([DVC, *args], cwd=cwd, check=check)


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def copy_repo(dest: Path) -> Path:
    """The files git would commit (tracked and untracked-not-ignored, as they are now), in a new git repo."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    for args in (
        ["git", "init", "-q"],
        ["git", "config", "user.email", "tests@example.org"],
        ["git", "config", "user.name", "actrec tests"],
        ["git", "config", "commit.gpgsign", "false"],
    ):
        run(args, cwd=dest)
    return dest


def commit(repo: Path, message: str) -> None:
    run(["git", "add", "-A"], cwd=repo)
    run(["git", "commit", "-q", "--allow-empty", "-m", message], cwd=repo)


def set_params(repo: Path, overrides: dict) -> None:
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for section, values in overrides.items():
        params[section].update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def tree_sha(path: Path) -> dict[str, str]:
    return {
        p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


# ------------------------------------------------------------------------------------------ static checks


def _interpolations(text: str) -> set[str]:
    return set(re.findall(r"\$\{([^}]+)\}", text))


def test_every_stage_reads_only_its_own_params_and_lists_existing_code():
    pipeline = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    stages = pipeline["stages"]
    assert list(stages) == ["demo_data", "ingest", "render", "train", "evaluate"]
    for name, stage in stages.items():
        body = stage.get("do", stage)
        listed = set(body.get("params", []))
        for key in listed:
            section, _, rest = key.partition(".")
            assert section == name, f"{name} reads {key}: another stage's params"
            assert rest in params[section], f"{key} is not in params.yaml"
        used = {k for k in _interpolations(body["cmd"]) if k != "item"}
        for key in used:
            assert key == name or key.startswith(f"{name}."), f"{name} cmd uses {key}"
            if key == name:  # a whole section unpacked as --key value: every key must be listed
                assert listed == {f"{name}.{k}" for k in params[name]}
            else:
                assert key in listed, f"{name} cmd uses ${{{key}}} but does not list it in params"
        for dep in body.get("deps", []):
            if "$" not in dep and not dep.startswith(("data/", "runs/")):
                assert (ROOT / dep).exists(), f"{name}: dependency {dep} does not exist"
    for m in MODELS:
        assert m in stages["train"]["foreach"] and m in stages["evaluate"]["foreach"]


def test_parsing_config_gives_no_flip():
    """evaluate.flip: false must reach the command as --no-flip (needs parsing.bool = boolean_optional)."""
    config = (ROOT / ".dvc" / "config").read_text()
    assert re.search(r"bool\s*=\s*boolean_optional", config)
    assert re.search(r"list\s*=\s*nargs", config)


def test_git_keeps_dvc_lock_and_metrics():
    """dvc.lock and the cache: false metrics must not be git-ignored (DVC refuses an ignored dvc.lock)."""
    paths = [
        "dvc.lock",
        *(f"runs/{m}/{f}" for m in MODELS for f in ("eval.json", "metrics.json", "metrics.csv")),
    ]
    done = subprocess.run(["git", "check-ignore", *paths], cwd=ROOT, capture_output=True, text=True)
    assert done.stdout.strip() == "", f"git ignores {done.stdout.split()}: see docs/pipeline.md, 'Git'"


# ------------------------------------------------------------------------------------------ pipeline report


def test_pipeline_report_table(tmp_path):
    (tmp_path / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())
    run_dir = tmp_path / "runs" / "c3d"
    run_dir.mkdir(parents=True)
    (run_dir / "eval.json").write_text(
        json.dumps(
            {"top1": 0.8125, "top5": 1.0, "mean_class_acc": 0.8, "n_clips": 80, "clips": 10, "flip": True}
        )
    )
    (run_dir / "metrics.json").write_text(json.dumps({"epochs": 20, "train_time_s": 81.2}))
    (run_dir / "plots").mkdir()
    (run_dir / "plots" / "curves.png").write_bytes(b"png")
    rows = pipeline_report.summary_rows(tmp_path)
    assert [r["model"] for r in rows] == list(MODELS)
    assert rows[0]["top1"] == 0.8125 and rows[1]["top1"] is None
    table = pipeline_report.format_table(rows, tmp_path)
    assert "81.2" in table and "100.0" in table and "10 + flip" in table
    assert "not evaluated yet: cnn_lstm, cnn_lstm_attn" in table
    assert "curves.png" in table and "dvc plots show" in table


def test_pipeline_report_cli(tmp_path, capsys):
    assert pipeline_report.main(["--root", str(tmp_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in rows] == list(MODELS)


# ------------------------------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A reproduced copy: tiny params committed, `dvc repro` run once (its output in repo/.repro.log)."""
    repo = copy_repo(tmp_path_factory.mktemp("pipeline") / "repo")
    dvc("config", "--local", "core.site_cache_dir", str(repo.parent / "dvc-site-cache"), cwd=repo)
    if run(["git", "check-ignore", "-q", "dvc.lock"], cwd=repo, check=False).returncode == 0:
        # test_git_keeps_dvc_lock_and_metrics reports this; here, un-ignore it to test the rest
        with open(repo / ".gitignore", "a") as f:
            f.write("!/dvc.lock\n")
    set_params(repo, TINY)
    commit(repo, "tiny params")
    t0 = time.perf_counter()
    done = dvc("repro", cwd=repo)
    (repo.parent / "repro.log").write_text(f"{time.perf_counter() - t0:.1f} s\n{done.stdout}\n{done.stderr}")
    commit(repo, "reproduced")
    return repo


@pytest.mark.slow
def test_repro_runs_every_stage_and_writes_the_outputs(repo):
    log = (repo.parent / "repro.log").read_text()
    assert ran_stages(log) == set(STAGES), log
    for path in ("data/demo/clips.csv", "data/keypoints.zarr", "data/heatmaps.zarr", "dvc.lock"):
        assert (repo / path).exists(), path
    for m in MODELS:
        for f in (
            "last.pt",
            "best.pt",
            "metrics.csv",
            "metrics.json",
            "plots/curves.png",
            "plots/confusion.png",
            "eval.json",
        ):
            assert (repo / "runs" / m / f).is_file(), f"runs/{m}/{f}"
        ev = json.loads((repo / "runs" / m / "eval.json").read_text())
        assert ev["model"] == m and ev["clips"] == 1 and ev["flip"] is False  # --no-flip reached the command
    assert (repo / "runs" / "cnn_lstm_attn" / "plots" / "attention.png").is_file()
    # DVC keeps its index inside the test's folder, not in /var/tmp/dvc
    assert (repo.parent / "dvc-site-cache").is_dir()


@pytest.mark.slow
def test_nothing_changed_means_nothing_to_do(repo):
    status = dvc("status", cwd=repo)
    assert "Data and pipelines are up to date" in status.stdout, status.stdout
    t0 = time.perf_counter()
    again = dvc("repro", cwd=repo)
    assert ran_stages(again.stdout) == set(), again.stdout
    assert time.perf_counter() - t0 < 30


@pytest.mark.slow
def test_metrics_show_lists_the_three_models(repo):
    metrics = json.loads(dvc("metrics", "show", "--json", cwd=repo).stdout)
    files = next(iter(metrics.values()))["data"]
    for m in MODELS:
        assert "top1" in files[f"runs/{m}/eval.json"]["data"]
        assert "val_top1" in files[f"runs/{m}/metrics.json"]["data"]
    table = dvc("metrics", "show", cwd=repo).stdout
    assert all(f"runs/{m}/eval.json" in table for m in MODELS)


@pytest.mark.slow
def test_plots_show_writes_the_html_report(repo, tmp_path):
    out = tmp_path / "plots"
    dvc("plots", "show", "--out", out, cwd=repo)
    html = (out / "index.html").read_text()
    assert '<img src="static/' in html  # the trainer's PNGs: shown even offline
    assert len(list((out / "static").glob("*.png"))) >= 7  # curves + confusion x 3, attention
    assert "vega" in html  # the metrics.csv curves (drawn by vega from a CDN)


@pytest.mark.slow
def test_a_train_param_reruns_only_train_and_evaluate(repo):
    heatmaps_before = (repo / "data" / "heatmaps.zarr" / "zarr.json").stat().st_mtime_ns
    set_params(repo, {"train": {"lr": 0.00077}})  # differs from params.yaml and from the experiment below
    status = dvc("status", "--json", cwd=repo)
    changed = set(json.loads(status.stdout))
    assert changed == {f"train@{m}" for m in MODELS}, status.stdout
    rerun = dvc("repro", cwd=repo)
    assert ran_stages(rerun.stdout) == {s for s in STAGES if s.startswith(("train@", "evaluate@"))}, (
        rerun.stdout
    )
    assert (repo / "data" / "heatmaps.zarr" / "zarr.json").stat().st_mtime_ns == heatmaps_before
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert lock["stages"]["train@c3d"]["params"]["params.yaml"]["train.lr"] == 0.00077
    commit(repo, "another lr")


@pytest.mark.slow
def test_exp_run_with_set_param(repo):
    done = dvc("exp", "run", "-S", "train.lr=0.00033", cwd=repo)
    assert ran_stages(done.stdout) == {s for s in STAGES if s.startswith(("train@", "evaluate@"))}, (
        done.stdout
    )
    exps = json.loads(dvc("exp", "show", "--json", cwd=repo).stdout)
    assert "0.00033" in json.dumps(exps)
    assert "Data and pipelines are up to date" in dvc("status", cwd=repo).stdout
    commit(repo, "experiment applied")


@pytest.mark.slow
def test_push_and_pull_restore_the_stores(repo, tmp_path):
    remote = tmp_path / "remote"
    dvc("remote", "add", "--local", "-d", "local", remote, cwd=repo)
    before = tree_sha(repo / "data" / "heatmaps.zarr")
    best = hashlib.sha256((repo / "runs" / "c3d" / "best.pt").read_bytes()).hexdigest()
    dvc("push", cwd=repo)
    assert any(p.is_file() for p in remote.rglob("*"))
    # lose the cache and every cached output
    shutil.rmtree(repo / ".dvc" / "cache")
    for path in ("data/demo", "data/keypoints.zarr", "data/heatmaps.zarr"):
        shutil.rmtree(repo / path)
    for m in MODELS:
        for f in ("last.pt", "best.pt"):
            (repo / "runs" / m / f).unlink()
        shutil.rmtree(repo / "runs" / m / "plots")
    assert "deleted" in dvc("status", cwd=repo).stdout
    dvc("pull", cwd=repo)
    assert tree_sha(repo / "data" / "heatmaps.zarr") == before
    assert hashlib.sha256((repo / "runs" / "c3d" / "best.pt").read_bytes()).hexdigest() == best
    assert "Data and pipelines are up to date" in dvc("status", cwd=repo).stdout


@pytest.mark.slow
def test_more_epochs_resume_the_persisted_run(repo):
    """runs/<model> persists and the stage passes --resume: a higher train.epochs trains only the new epochs."""
    rows_before = (repo / "runs" / "c3d" / "metrics.csv").read_text().strip().splitlines()
    epochs = yaml.safe_load((repo / "params.yaml").read_text())["train"]["epochs"]
    set_params(repo, {"train": {"epochs": epochs + 1}})
    done = dvc("repro", "train@c3d", cwd=repo)
    assert ran_stages(done.stdout) == {"train@c3d"}, done.stdout
    assert f"resuming runs/c3d/last.pt at epoch {epochs + 1}/{epochs + 1}" in done.stdout + done.stderr
    rows_after = (repo / "runs" / "c3d" / "metrics.csv").read_text().strip().splitlines()
    assert rows_after[: len(rows_before)] == rows_before and len(rows_after) == len(rows_before) + 1
    commit(repo, "one more epoch")


@pytest.mark.slow
@pytest.mark.shared
def test_a_real_dataset_through_the_ingest_params(repo, shared_dir):
    """Penn Action from a folder outside the repository: the same stage, other params, no demo manifest."""
    labels = shared_dir / "data" / "penn_action" / "labels"
    set_params(repo, {"ingest": {"sources": str(labels), "format": "penn-action", "layout": "penn13"}})
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["ingest"]["flags"]["labels"] = []
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    done = dvc("repro", "ingest", cwd=repo)
    assert ran_stages(done.stdout) == {"ingest"}, done.stdout
    assert "2326 kept" in done.stdout.replace("\n", " ")
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["ingest"]
    assert str(labels) in [d["path"] for d in lock["deps"]]
    assert "--labels" not in lock["cmd"]
