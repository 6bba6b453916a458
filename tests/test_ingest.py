"""Ingest end to end: pose files -> keypoint store + clip table, with rejects, modes and the CLI."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import etl
from etl.cli import app
from etl.commands.ingest import ingest
from etl.common.errors import ActrecError
from etl.pose.clip_checks import validate_clip
from etl.pose.skeleton import get_layout
from etl.readers import ReadOptions, read_source
from etl.stores.keypoint_store import KeypointStore

runner = CliRunner()
COCO = get_layout("coco17")


def _options(demo_dir, **kw):
    return ReadOptions(layout=COCO, labels_csv=demo_dir / "clips.csv", **kw)


def test_store_round_trips_every_clip(demo_dir, keypoint_store):
    store = KeypointStore.open(keypoint_store)
    clips = [
        validate_clip(c, COCO) for c in read_source([demo_dir / "clips"], "coco-json", _options(demo_dir))
    ]
    assert len(store) == len(clips) == 32
    for i, clip in enumerate(clips):
        kps, scores = store.read_clip(i)
        assert store.table.clip_id.iat[i] == clip.clip_id
        np.testing.assert_array_equal(kps, clip.keypoints)  # NaN == NaN for assert_array_equal
        np.testing.assert_array_equal(scores, clip.scores)
        assert kps.shape[:2] == (store.table.n_persons.iat[i], store.table.n_frames.iat[i])


def test_clip_table_columns_labels_and_api(keypoint_store):
    df = etl.read_clips(keypoint_store)
    for col in (
        "clip_id",
        "label",
        "label_name",
        "split",
        "n_frames",
        "n_persons",
        "img_h",
        "img_w",
        "layout",
        "source",
        "source_format",
        "subject",
        "camera",
    ):
        assert col in df.columns, col
    store = KeypointStore.open(keypoint_store)
    assert store.classes == sorted(df.label_name.unique())
    assert (df.label_name == [store.classes[i] for i in df.label]).all()
    assert df.clip_id.is_unique
    assert set(df.split) == {"train", "test"}
    assert store.attrs["format_version"] == 2
    assert store.attrs["layout"] == "coco17"
    assert store.attrs["ingest"]["format"] == "coco-json"


def _messy_input(demo_dir, tmp_path):
    """The demo clips plus: a truncated JSON, a duplicate id (same stem in a second folder), a clip whose
    manifest label is not in the class list, and a clip missing from the manifest."""
    src = tmp_path / "src"
    shutil.copytree(demo_dir / "clips", src / "a")
    (src / "b").mkdir()
    first = sorted((src / "a").glob("*.json"))[0]
    shutil.copy(first, src / "b" / first.name)  # duplicate id
    (src / "a" / "zz_truncated.json").write_text(first.read_text()[:200])
    shutil.copy(first, src / "a" / "zz_unlisted.json")  # not in the manifest -> missing label
    manifest = pd.read_csv(demo_dir / "clips.csv")
    odd = manifest.iloc[[0]].assign(clip_id="zz_odd", label_name="juggle")
    shutil.copy(first, src / "a" / "zz_odd.json")
    pd.concat([manifest, odd]).to_csv(tmp_path / "clips.csv", index=False)
    classes = tmp_path / "classes.txt"
    classes.write_text("\n".join(sorted(manifest.label_name.unique())) + "\n")
    return src, tmp_path / "clips.csv", classes


def test_every_clip_is_kept_or_rejected_with_a_reason(demo_dir, tmp_path):
    src, manifest, classes = _messy_input(demo_dir, tmp_path)
    opts = ReadOptions(layout=COCO, labels_csv=manifest, classes_file=classes)
    report = ingest([src / "a", src / "b"], out=tmp_path / "kp.zarr", fmt="coco-json", options=opts)
    assert report.n_read == 32 + 4
    assert report.n_kept + report.n_rejected == report.n_read
    reasons = {r.clip_id: r.reason for r in report.rejects}
    duplicate = sorted((demo_dir / "clips").glob("*.json"))[0].stem
    assert set(reasons) == {"zz_truncated", "zz_unlisted", "zz_odd", duplicate}
    assert "not valid JSON" in reasons["zz_truncated"]
    assert "missing label" in reasons["zz_unlisted"]
    assert "unknown label 'juggle'" in reasons["zz_odd"]
    assert "duplicate clip_id" in reasons[duplicate]
    stored = etl.read_clips(tmp_path / "kp.zarr")
    rejects = pd.read_parquet(tmp_path / "kp.zarr" / "rejects.parquet")
    assert len(stored) == report.n_kept
    assert len(rejects) == report.n_rejected
    assert set(rejects.columns) == {"clip_id", "source", "reason"}


def test_strict_and_unusable_input_write_nothing(demo_dir, tmp_path):
    src, manifest, classes = _messy_input(demo_dir, tmp_path)
    opts = ReadOptions(layout=COCO, labels_csv=manifest, classes_file=classes)
    with pytest.raises(ActrecError, match="--strict: 4 clip"):
        ingest([src / "a", src / "b"], out=tmp_path / "kp.zarr", fmt="coco-json", options=opts, strict=True)
    assert not (tmp_path / "kp.zarr").exists()
    assert not (tmp_path / "kp.zarr.partial").exists()
    with pytest.raises(ActrecError, match="no usable clips"):
        ingest([src / "a"], out=tmp_path / "kp.zarr", fmt="coco-json", options=ReadOptions(layout=COCO))
    assert not (tmp_path / "kp.zarr").exists()


def test_existing_store_needs_overwrite_and_append_adds_only_new_ids(demo_dir, tmp_path):
    out = tmp_path / "kp.zarr"
    half = tmp_path / "half"
    half.mkdir()
    files = sorted((demo_dir / "clips").glob("*.json"))
    for f in files[:10]:
        shutil.copy(f, half / f.name)
    ingest([half], out=out, fmt="coco-json", options=_options(demo_dir))
    with pytest.raises(ActrecError, match="--overwrite"):
        ingest([half], out=out, fmt="coco-json", options=_options(demo_dir))
    report = ingest([demo_dir / "clips"], out=out, fmt="coco-json", options=_options(demo_dir), mode="append")
    assert (report.n_read, report.n_kept, report.n_rejected, report.n_total) == (32, 22, 10, 32)
    appended = KeypointStore.open(out)
    fresh_out = tmp_path / "fresh.zarr"
    ingest([demo_dir / "clips"], out=fresh_out, fmt="coco-json", options=_options(demo_dir))
    fresh = KeypointStore.open(fresh_out)
    by_id = dict(zip(fresh.table.clip_id, range(len(fresh)), strict=True))
    for i, cid in enumerate(appended.table.clip_id):
        np.testing.assert_array_equal(appended.read_clip(i)[0], fresh.read_clip(by_id[cid])[0])
    assert appended.classes == fresh.classes
    report = ingest([half], out=out, fmt="coco-json", options=_options(demo_dir), mode="overwrite")
    assert KeypointStore.open(out).table.shape[0] == 10


def test_failed_ingest_leaves_the_old_store_and_no_partial(demo_dir, tmp_path, monkeypatch):
    out = tmp_path / "kp.zarr"
    ingest([demo_dir / "clips"], out=out, fmt="coco-json", options=_options(demo_dir))
    before = etl.read_clips(out)

    def explode(self, clip):
        raise RuntimeError("disk full")

    monkeypatch.setattr("etl.stores.keypoint_store.KeypointWriter.add", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        ingest([demo_dir / "clips"], out=out, fmt="coco-json", options=_options(demo_dir), mode="overwrite")
    assert not (tmp_path / "kp.zarr.partial").exists()
    pd.testing.assert_frame_equal(etl.read_clips(out), before)


def test_ingest_is_deterministic(demo_dir, tmp_path):
    for name in ("a.zarr", "b.zarr"):
        ingest([demo_dir / "clips"], out=tmp_path / name, fmt="coco-json", options=_options(demo_dir))
    a, b = KeypointStore.open(tmp_path / "a.zarr"), KeypointStore.open(tmp_path / "b.zarr")
    assert a.attrs["content_hash"] == b.attrs["content_hash"]
    files_a = sorted(
        p.relative_to(tmp_path / "a.zarr") for p in (tmp_path / "a.zarr").rglob("*") if p.is_file()
    )
    for rel in files_a:
        assert (tmp_path / "a.zarr" / rel).read_bytes() == (tmp_path / "b.zarr" / rel).read_bytes(), rel


def test_cli_ingest_query_info(demo_dir, tmp_path):
    out = tmp_path / "kp.zarr"
    args = ["ingest", str(demo_dir / "clips"), "--labels", str(demo_dir / "clips.csv"), "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "32 read, 32 kept, 0 rejected" in result.output
    assert "format coco-json" in result.output  # --format auto says what it picked
    again = runner.invoke(app, args)
    assert again.exit_code == 1
    assert "--overwrite" in again.output
    count = runner.invoke(app, ["query", str(out), "split == 'test'", "--count"])
    assert count.exit_code == 0
    assert count.output.strip() == str((etl.read_clips(out).split == "test").sum())
    rows = runner.invoke(app, ["query", str(out), "label_name == 'wave'", "--columns", "clip_id,subject"])
    assert rows.exit_code == 0
    assert "s01_wave_r1" in rows.output
    bad = runner.invoke(app, ["query", str(out), "nosuchcolumn > 3"])
    assert bad.exit_code == 1
    assert "bad clip query" in bad.output
    info = runner.invoke(app, ["info", str(out)])
    assert info.exit_code == 0
    assert "wave" in info.output
    assert "32 clips" in info.output


def test_cli_exit_code_when_every_clip_is_rejected(demo_dir, tmp_path):
    result = runner.invoke(
        app,
        [
            "ingest",
            str(demo_dir / "clips"),
            "--format",
            "coco-json",
            "--layout",
            "penn13",
            "--labels",
            str(demo_dir / "clips.csv"),
            "--out",
            str(tmp_path / "kp.zarr"),
        ],
    )
    assert result.exit_code == 1
    assert "no usable clips" in result.output
    assert "penn13" in result.output


@pytest.mark.shared
@pytest.mark.parametrize(
    ("fmt", "folder", "layout", "n_clips", "n_classes", "n_test"),
    [
        ("penn-action", "penn_action/labels", "penn13", 2326, 15, 1068),
        ("jhmdb-ddnet", "jhmdb_ddnet14", "jhmdb15", 609, 14, 176),
        ("utd-mhad", "utd_mhad_skeleton/Skeleton", "kinect20", 861, 27, 430),
    ],
)
def test_public_datasets_via_cli(shared_dir, tmp_path, fmt, folder, layout, n_clips, n_classes, n_test):
    out = tmp_path / "kp.zarr"
    result = runner.invoke(
        app,
        ["ingest", str(shared_dir / "data" / folder), "--format", fmt, "--layout", layout, "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert f"{n_clips} read, {n_clips} kept, 0 rejected" in result.output
    count = runner.invoke(app, ["query", str(out), "split == 'test'", "--count"])
    assert count.output.strip() == str(n_test)
    df = etl.read_clips(out)
    assert df.label.nunique() == n_classes
    assert len(df) == n_clips


def test_store_attrs_are_json(keypoint_store):
    attrs = json.loads((keypoint_store / "zarr.json").read_text())["attributes"]
    assert attrs["kind"] == "actrec.keypoints"
    assert len(attrs["joint_names"]) == 17


# ------------------------------------------------------------------------------------------- labels


def _clip(cid, label=None, name=None):
    from etl.pose.clip import PoseClip

    return PoseClip(
        cid,
        np.zeros((1, 2, 17, 2), np.float32),
        np.ones((1, 2, 17), np.float32),
        name,
        "train",
        10,
        10,
        cid,
        "npz",
        label=label,
    )


def test_numeric_labels_keep_their_integers_and_never_get_two_names():
    from etl.pose.labels import NUMERIC, LabelBook

    book = LabelBook(None)
    clips = [_clip("a", 2), _clip("b", 0, "run"), _clip("c", 2)]
    assert [book.resolve(c) for c in clips] == [None, None, None]
    assert [c.label_name for c in clips] == ["class_2", "run", "class_2"]
    assert "is 'run' for earlier clips" in book.resolve(_clip("d", 0, "walk"))
    assert "is label 0 for earlier clips" in book.resolve(_clip("e", 1, "run"))
    assert book.mode == NUMERIC
    assert book.classes(["class_2", "run"]) == ["run", "class_1", "class_2"]


def test_fixed_class_lists_check_numbers_and_names():
    from etl.pose.labels import LabelBook

    book = LabelBook(["run", "walk"])
    ok = _clip("a", 1)
    assert book.resolve(ok) is None
    assert ok.label_name == "walk"
    assert "out of range" in book.resolve(_clip("b", 5))
    assert "unknown label 'jump'" in book.resolve(_clip("c", None, "jump"))
    assert "is 'run' in the class list but 'walk'" in book.resolve(_clip("d", 0, "walk"))


def test_manifest_with_numbers_only_and_mixed_meta_types(demo_dir, tmp_path):
    manifest = pd.read_csv(demo_dir / "clips.csv")
    codes = {name: i for i, name in enumerate(sorted(manifest.label_name.unique(), reverse=True))}
    numeric = manifest.assign(label=manifest.label_name.map(codes), label_name="")
    numeric.to_csv(tmp_path / "numeric.csv", index=False)
    opts = ReadOptions(layout=COCO, labels_csv=tmp_path / "numeric.csv")
    report = ingest([demo_dir / "clips"], out=tmp_path / "kp.zarr", fmt="coco-json", options=opts)
    assert report.n_kept == len(manifest)
    df = etl.read_clips(tmp_path / "kp.zarr")
    expected = df.clip_id.map(dict(zip(manifest.clip_id, manifest.label_name.map(codes), strict=True)))
    assert (df.label == expected).all()  # the file's integers are kept
    assert (df.label_name == "class_" + df.label.astype(str)).all()

    from etl.commands.ingest import _meta_column_types

    frame = pd.DataFrame(
        {"clip_id": ["a", "b", "c"], "fps": [30.0, "30", None], "tag": [30.0, "30fps", None]}
    )
    typed = _meta_column_types(frame)
    assert typed.fps.dtype == "float64"
    assert list(typed.fps[:2]) == [30.0, 30.0]
    assert pd.isna(typed.fps[2])
    assert list(typed.tag[:2]) == ["30.0", "30fps"]
    assert pd.isna(typed.tag[2])  # a real mix stays text


def test_manifest_number_columns_become_numbers_and_queries_select_them(demo_dir, tmp_path):
    manifest = pd.read_csv(demo_dir / "clips.csv", dtype=str)
    n = len(manifest)
    manifest["camera"] = [str(i % 4) for i in range(n)]
    manifest["speed"] = [f"{0.5 * (i % 5):.1f}" for i in range(n)]
    manifest["room"] = ["" if i % 3 == 0 else str(i % 2) for i in range(n)]  # integers with gaps
    manifest["note"] = ["3" if i % 2 else "three" for i in range(n)]  # mixed: text
    manifest.to_csv(tmp_path / "m.csv", index=False)
    opts = ReadOptions(layout=COCO, labels_csv=tmp_path / "m.csv")
    ingest([demo_dir / "clips"], out=tmp_path / "kp.zarr", fmt="coco-json", options=opts)
    df = etl.read_clips(tmp_path / "kp.zarr")
    assert df.camera.dtype == "int64"
    assert df.speed.dtype == "float64"
    assert df.room.dtype == "Int64"
    assert pd.api.types.is_string_dtype(df.note.dtype)
    from etl.stores.cliptable import query_clips

    assert len(query_clips(df, "camera == 3")) == sum(i % 4 == 3 for i in range(n)) > 0
    assert len(query_clips(df, "speed > 1.0")) == sum(0.5 * (i % 5) > 1.0 for i in range(n)) > 0
    assert len(query_clips(df, "room == 1")) == sum(i % 3 != 0 and i % 2 == 1 for i in range(n)) > 0


def test_output_inside_an_input_folder_is_refused(demo_dir, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(demo_dir / "clips", src)
    with pytest.raises(ActrecError, match="inside the input folder"):
        ingest([src], out=src / "kp.zarr", fmt="coco-json", options=_options(demo_dir))


def test_a_publish_killed_between_its_renames_is_recovered(demo_dir, tmp_path):
    out = tmp_path / "kp.zarr"
    ingest([demo_dir / "clips"], out=out, fmt="coco-json", options=_options(demo_dir))
    os.replace(out, tmp_path / "kp.zarr.old")  # the state right after publish's first rename
    report = ingest([demo_dir / "clips"], out=out, fmt="coco-json", options=_options(demo_dir), mode="append")
    assert report.n_total == 32
    assert report.n_kept == 0
    assert not (tmp_path / "kp.zarr.old").exists()
