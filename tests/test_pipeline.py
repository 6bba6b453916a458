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

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DVC = BIN / "dvc"
MODELS = ("c3d", "cnn_lstm", "cnn_lstm_attn")  # the heatmap models: the train@<model> stages
GCN = "stgcnpp"  # the graph network: train_gcn
STAGES = (
    "demo_data",
    "extract",
    "ingest",
    "render",
    *(f"train@{m}" for m in MODELS),
    "train_gcn",
    *(f"evaluate@{m}" for m in (*MODELS, GCN)),
    "fuse",
)
# what a changed `train` param reruns: the heatmap models, their tests and the fusion (not train_gcn)
AFTER_TRAIN = {*(f"train@{m}" for m in MODELS), *(f"evaluate@{m}" for m in MODELS), "fuse"}

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
    "train_gcn": {
        "preset": "tiny",
        "epochs": 1,
        "clip_len": 4,
        "batch_size": 4,
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
    assert list(stages) == [
        "demo_data",
        "extract",
        "ingest",
        "render",
        "train",
        "train_gcn",
        "evaluate",
        "fuse",
    ]
    for name, stage in stages.items():
        body = stage.get("do", stage)
        listed = set(body.get("params", []))
        for key in listed:
            section, _, rest = key.partition(".")
            assert section == name, f"{name} reads {key}: another stage's params"
            assert rest in params[section], f"{key} is not in params.yaml"
        used = {
            k for k in _interpolations(body["cmd"]) if k not in ("item", "key") and not k.startswith("item.")
        }
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
        assert m in stages["train"]["foreach"]
    assert list(stages["evaluate"]["foreach"]) == [*MODELS, GCN]
    assert "--model stgcnpp" in stages["train_gcn"]["cmd"]
    assert f"runs/{GCN}/eval.json" in stages["fuse"]["deps"]
    weights = str(params["fuse"]["weights"]).split(",")
    assert len(weights) == len(MODELS) + 1, "fuse.weights: one per fused model"


def test_parsing_config_gives_no_flip():
    """evaluate.flip: false must reach the command as --no-flip (needs parsing.bool = boolean_optional)."""
    config = (ROOT / ".dvc" / "config").read_text()
    assert re.search(r"bool\s*=\s*boolean_optional", config)
    assert re.search(r"list\s*=\s*nargs", config)


def test_git_keeps_dvc_lock_and_dvc_keeps_the_run_outputs():
    """dvc.lock stays in git (DVC refuses an ignored dvc.lock); what a run rewrites (checkpoints, metrics,
    eval.json) is DVC's, git-ignored and untracked, so a demo run leaves `git status` clean."""
    done = subprocess.run(["git", "check-ignore", "dvc.lock"], cwd=ROOT, capture_output=True, text=True)
    assert done.stdout.strip() == "", "git ignores dvc.lock: see docs/pipeline.md, 'Git'"
    outputs = [
        f"runs/{m}/{f}"
        for m in MODELS
        for f in ("last.pt", "eval.json", "scores.json", "metrics.json", "metrics.csv", "plots/curves.png")
    ] + ["runs/fused/eval.json", "runs/fused/scores.json"]
    ignored = subprocess.run(["git", "check-ignore", *outputs], cwd=ROOT, capture_output=True, text=True)
    assert sorted(ignored.stdout.split()) == sorted(outputs)
    tracked = subprocess.run(["git", "ls-files", "runs"], cwd=ROOT, capture_output=True, text=True).stdout
    assert [p for p in tracked.split() if not p.endswith(".gitignore")] == []


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


@pytest.fixture
def fresh(repo, tmp_path) -> Path:
    """A private copy of the reproduced repository (git, DVC cache and outputs) for a test that changes it: no
    test sees another's params, commits, experiments or remotes, whatever the order they run in."""
    copy = tmp_path / "repo"
    shutil.copytree(repo, copy, symlinks=True)
    dvc("config", "--local", "core.site_cache_dir", str(tmp_path / "dvc-site-cache"), cwd=copy)
    return copy


@pytest.mark.slow
def test_repro_runs_every_stage_and_writes_the_outputs(repo):
    log = (repo.parent / "repro.log").read_text()
    assert ran_stages(log) == set(STAGES), log
    for path in ("data/demo/clips.csv", "data/keypoints.zarr", "data/heatmaps.zarr", "dvc.lock"):
        assert (repo / path).exists(), path
    assert (repo / "data" / "poses").is_dir()  # the extract stage on data/videos (its README only): empty
    assert list((repo / "data" / "poses").iterdir()) == []
    for m in (*MODELS, GCN):
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
        assert ev["model"] == m
        assert ev["clips"] == 1
        assert ev["flip"] is False  # --no-flip reached the command
    gcn = json.loads((repo / "runs" / GCN / "eval.json").read_text())
    assert (gcn["model"], gcn["source"], gcn["store"]) == (GCN, "coordinates", "data/keypoints.zarr")
    assert (repo / "runs" / "cnn_lstm_attn" / "plots" / "attention.png").is_file()
    fused = json.loads((repo / "runs" / "fused" / "eval.json").read_text())
    assert [i["model"] for i in fused["inputs"]] == [*MODELS, GCN]
    assert set(fused["clip_scores"]) == set(
        json.loads((repo / "runs" / "c3d" / "eval.json").read_text())["clip_scores"]
    )
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
def test_metrics_show_lists_only_what_a_user_compares(repo):
    metrics = json.loads(dvc("metrics", "show", "--json", cwd=repo).stdout)
    files = next(iter(metrics.values()))["data"]
    assert sorted(files) == sorted(f"runs/{m}/scores.json" for m in (*MODELS, GCN, "fused"))
    for m in (*MODELS, GCN, "fused"):
        scores = files[f"runs/{m}/scores.json"]["data"]
        assert set(scores) == {"top1", "top5", "mean_class_acc"}
        ev = json.loads((repo / "runs" / m / "eval.json").read_text())
        assert scores["top1"] == ev["top1"]  # the same numbers as the full evaluation
    table = dvc("metrics", "show", cwd=repo).stdout
    header = table.splitlines()[0].split()
    assert header == ["Path", "mean_class_acc", "top1", "top5"], table


@pytest.mark.slow
def test_the_documented_exp_show_line_fits_a_terminal(repo):
    """docs/pipeline.md's `dvc exp show` line: the experiment, the params a user varies and the test top-1."""
    doc = (ROOT / "docs" / "pipeline.md").read_text()
    line = re.search(r"^(dvc exp show --no-pager [^\n#]+?)\s*#", doc, re.M)
    assert line, "docs/pipeline.md has no `dvc exp show --no-pager ...` line"
    args = [a.strip("'") for a in re.findall(r"'[^']*'|\S+", line.group(1))][1:]
    env = {**_env(), "COLUMNS": "100"}  # a terminal of 100 columns: nothing may be cut ("…")
    done = subprocess.run([DVC, *args], cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    table = done.stdout
    assert done.returncode == 0, table
    assert "…" not in table, table
    assert "scores.json:top1" in table, table
    assert "train.lr" in table, table
    assert "train.epochs" in table, table


@pytest.mark.slow
def test_plots_show_writes_the_html_report(repo, tmp_path):
    out = tmp_path / "plots"
    dvc("plots", "show", "--out", out, cwd=repo)
    html = (out / "index.html").read_text()
    assert '<img src="static/' in html  # the trainer's PNGs: shown even offline
    assert len(list((out / "static").glob("*.png"))) >= 9  # curves + confusion x 4, attention
    assert "vega" in html  # the metrics.csv curves (drawn by vega from a CDN)


@pytest.mark.slow
def test_a_train_param_reruns_only_train_evaluate_and_fuse(fresh):
    heatmaps_before = (fresh / "data" / "heatmaps.zarr" / "zarr.json").stat().st_mtime_ns
    set_params(fresh, {"train": {"lr": 0.00077}})  # differs from params.yaml and from the experiment below
    status = dvc("status", "--json", cwd=fresh)
    changed = set(json.loads(status.stdout))
    assert changed == {f"train@{m}" for m in MODELS}, status.stdout
    rerun = dvc("repro", cwd=fresh)
    assert ran_stages(rerun.stdout) == AFTER_TRAIN, rerun.stdout
    assert (fresh / "data" / "heatmaps.zarr" / "zarr.json").stat().st_mtime_ns == heatmaps_before
    lock = yaml.safe_load((fresh / "dvc.lock").read_text())
    assert lock["stages"]["train@c3d"]["params"]["params.yaml"]["train.lr"] == 0.00077


@pytest.mark.slow
def test_a_train_gcn_param_reruns_only_the_graph_network_and_fuse(fresh):
    set_params(fresh, {"train_gcn": {"lr": 0.0031}})
    changed = set(json.loads(dvc("status", "--json", cwd=fresh).stdout))
    assert changed == {"train_gcn"}
    rerun = dvc("repro", cwd=fresh)
    assert ran_stages(rerun.stdout) == {"train_gcn", f"evaluate@{GCN}", "fuse"}, rerun.stdout


@pytest.mark.slow
def test_exp_run_with_set_param(fresh):
    done = dvc("exp", "run", "-S", "train.lr=0.00033", cwd=fresh)
    assert ran_stages(done.stdout) == AFTER_TRAIN, done.stdout
    exps = json.loads(dvc("exp", "show", "--json", cwd=fresh).stdout)
    assert "0.00033" in json.dumps(exps)
    assert "Data and pipelines are up to date" in dvc("status", cwd=fresh).stdout


@pytest.mark.slow
def test_push_and_pull_restore_the_stores(fresh, tmp_path):
    remote = tmp_path / "remote"
    dvc("remote", "add", "--local", "-d", "local", remote, cwd=fresh)
    before = tree_sha(fresh / "data" / "heatmaps.zarr")
    best = hashlib.sha256((fresh / "runs" / "c3d" / "best.pt").read_bytes()).hexdigest()
    dvc("push", cwd=fresh)
    assert any(p.is_file() for p in remote.rglob("*"))
    # lose the cache and every cached output
    shutil.rmtree(fresh / ".dvc" / "cache")
    for path in ("data/demo", "data/keypoints.zarr", "data/heatmaps.zarr"):
        shutil.rmtree(fresh / path)
    for m in MODELS:
        for f in ("last.pt", "best.pt"):
            (fresh / "runs" / m / f).unlink()
        shutil.rmtree(fresh / "runs" / m / "plots")
    assert "deleted" in dvc("status", cwd=fresh).stdout
    dvc("pull", cwd=fresh)
    assert tree_sha(fresh / "data" / "heatmaps.zarr") == before
    assert hashlib.sha256((fresh / "runs" / "c3d" / "best.pt").read_bytes()).hexdigest() == best
    assert "Data and pipelines are up to date" in dvc("status", cwd=fresh).stdout


@pytest.mark.slow
def test_more_epochs_resume_the_persisted_run(fresh):
    """runs/<model> persists and the stage passes --resume: a higher train.epochs trains only the new epochs."""
    rows_before = (fresh / "runs" / "c3d" / "metrics.csv").read_text().strip().splitlines()
    epochs = yaml.safe_load((fresh / "params.yaml").read_text())["train"]["epochs"]
    set_params(fresh, {"train": {"epochs": epochs + 1}})
    done = dvc("repro", "train@c3d", cwd=fresh)
    assert ran_stages(done.stdout) == {"train@c3d"}, done.stdout
    assert f"resuming runs/c3d/last.pt at epoch {epochs + 1}/{epochs + 1}" in done.stdout + done.stderr
    rows_after = (fresh / "runs" / "c3d" / "metrics.csv").read_text().strip().splitlines()
    assert rows_after[: len(rows_before)] == rows_before
    assert len(rows_after) == len(rows_before) + 1


@pytest.mark.slow
def test_exp_with_fewer_epochs_than_the_finished_run_trains_its_own(fresh):
    """The persisted run has more epochs than the experiment asks: it must not be reported as the experiment's
    result ("resumed at epoch 3/1"); the experiment trains from scratch with its own epochs."""
    epochs = yaml.safe_load((fresh / "params.yaml").read_text())["train"]["epochs"] + 1
    set_params(fresh, {"train": {"epochs": epochs}})
    dvc("repro", "train@c3d", cwd=fresh)  # the persisted run now has 2 epochs
    commit(fresh, "one more epoch")
    done = dvc("exp", "run", "-S", "train.epochs=1", cwd=fresh)
    out = done.stdout + done.stderr
    assert f"it has {epochs} epochs, more than the 1 asked" in out, out
    assert "training from scratch" in out, out
    assert len((fresh / "runs" / "c3d" / "metrics.csv").read_text().strip().splitlines()) == 1 + 1  # header
    assert json.loads((fresh / "runs" / "c3d" / "metrics.json").read_text())["epochs"] == 1
    ev = json.loads((fresh / "runs" / "c3d" / "eval.json").read_text())
    assert ev["checkpoint_epoch"] == 1  # the experiment's scores are of its own 1-epoch model


@pytest.mark.slow
@pytest.mark.shared
def test_a_real_dataset_through_the_ingest_params(fresh, shared_dir):
    """Penn Action from a folder outside the repository: the same stage, other params, no demo manifest."""
    labels = shared_dir / "data" / "penn_action" / "labels"
    set_params(fresh, {"ingest": {"sources": str(labels), "format": "penn-action", "layout": "penn13"}})
    params = yaml.safe_load((fresh / "params.yaml").read_text())
    params["ingest"]["flags"]["labels"] = []
    (fresh / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    done = dvc("repro", "ingest", cwd=fresh)
    assert ran_stages(done.stdout) == {"ingest"}, done.stdout
    assert "2326 kept" in done.stdout.replace("\n", " ")
    lock = yaml.safe_load((fresh / "dvc.lock").read_text())["stages"]["ingest"]
    assert str(labels) in [d["path"] for d in lock["deps"]]
    assert "--labels" not in lock["cmd"]
