"""Hostile and unusual input files: every bad clip becomes a reject with its reason, the good clips are kept,
nothing allocates more than the documented limits (checked under a memory cap), file names stay distinct."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from fixtures_pose import (
    confidences,
    moving_poses,
    pyskl_annotation,
    write_coco_results,
    write_h5_clip,
    write_npz_clip,
    write_pyskl,
)
from typer.testing import CliRunner

import etl
from etl.cli import app
from etl.commands.ingest import ingest
from etl.pose.clip import PoseClip, Reject, safe_clip_id
from etl.pose.limits import DEFAULT_MAX_CLIP_BYTES
from etl.pose.skeleton import COCO17
from etl.readers import ReadOptions, read_source

runner = CliRunner()


def run_ingest(paths, fmt, tmp_path, **options):
    out = tmp_path / "out.zarr"
    report = ingest([Path(p) for p in paths], out=out, fmt=fmt, options=ReadOptions(layout=COCO17, **options))
    # every input clip is in the store or in its rejects table
    assert report.n_read == report.n_kept + report.n_rejected
    assert len(etl.read_clips(out)) == report.n_kept
    return report, out


def reasons_by_id(report) -> dict[str, str]:
    return {r.clip_id: r.reason for r in report.rejects}


# --- labels of every shape a file can hold -----------------------------------------------------------------------

BAD_NUMERIC_LABELS = {
    "neg1": (-1, "label -1 is negative"),
    "neg5": (-5, "label -5 is negative"),
    "tera": (10**12, "label 1000000000000 is too large"),
    "huge": (10**30, "is too large"),
    "npneg": (np.int64(-3), "label -3 is negative"),
    "half": (3.5, "label must be an integer, found 3.5"),
    "nan": (float("nan"), "label must be an integer, found nan"),
    "inf": (float("inf"), "label must be an integer, found inf"),
    "flag": (True, "label must be an integer, found True"),
    "word": ("three", "label must be an integer, found 'three'"),
    "markup": ("[bold]1[/bold]", "label must be an integer, found '[bold]1[/bold]'"),
    "longdigits": ("9" * 5000, "label must be an integer"),
    "alist": ([1, 2], "label must be an integer"),
    "none": (None, "label must be an integer"),
}
GOOD_NUMERIC_LABELS = {
    "zero": 0,
    "two": 2,
    "spaced": " 1 ",
    "float_int": 2.0,
    "np": np.int16(1),
    "big_ok": 40,
}


def test_pyskl_labels_of_every_shape(tmp_path):
    annotations = [
        pyskl_annotation(name, label, n_persons=1, n_frames=6, seed=i)
        for i, (name, label) in enumerate(
            [*((k, v[0]) for k, v in BAD_NUMERIC_LABELS.items()), *GOOD_NUMERIC_LABELS.items()]
        )
    ]
    path = write_pyskl(tmp_path / "labels.pkl", annotations, protocol=4)
    report, out = run_ingest([path], "pyskl", tmp_path)
    reasons = reasons_by_id(report)
    assert set(reasons) == set(BAD_NUMERIC_LABELS)
    for name, (_, expected) in BAD_NUMERIC_LABELS.items():
        assert expected in reasons[name], (name, reasons[name])
        assert "\n" not in reasons[name]
    table = etl.read_clips(out).set_index("clip_id")
    assert sorted(table.index) == sorted(GOOD_NUMERIC_LABELS)
    assert table.loc["two", "label"] == 2
    assert table.loc["spaced", "label"] == 1
    classes = KeypointStoreAttrs(out)["classes"]
    assert len(classes) == 41
    assert classes[40] == "class_40"  # the class list stays as large as the labels


def KeypointStoreAttrs(store: Path) -> dict:
    import zarr

    return dict(zarr.open_group(str(store), mode="r").attrs)


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        (np.array(-1), "label -1 is negative"),
        (np.array(10**12), "label 1000000000000 is too large"),
        (np.array(np.iinfo(np.uint64).max), "is too large"),
        (np.array(2.5), "label must be an integer, found 2.5"),
        (np.array(np.nan), "label must be an integer, found nan"),
        (np.array(True), "label must be an integer"),
        (np.array([1, 2]), "missing label"),  # npz reads 0-d arrays as attributes only
        (np.array("x y"), "label must be an integer, found 'x y'"),
        (np.array(b"[/x]"), "label must be an integer, found '[/x]'"),
    ],
)
def test_npz_label_attributes_of_every_shape(tmp_path, label, expected):
    src = tmp_path / "in"
    src.mkdir()
    kp, sc = moving_poses(1, 5, 17), confidences((1, 5, 17))
    np.savez(src / "bad.npz", keypoints=kp.transpose(1, 0, 2, 3), scores=sc.transpose(1, 0, 2), label=label)
    write_npz_clip(src / "good.npz", kp, sc, label=np.int64(1))
    report, out = run_ingest([src], "npz", tmp_path)
    assert list(etl.read_clips(out).clip_id) == ["good"]
    assert expected in reasons_by_id(report)["bad"]


def test_manifest_negative_label_is_a_reject_not_a_crash(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a", "b", "c"):
        write_coco_results(src / f"{name}.json", moving_poses(1, 4, 17), confidences((1, 4, 17)))
    labels = tmp_path / "labels.csv"
    labels.write_text("clip_id,label_name,label\na,,0\nb,,-1\nc,,-5\n")
    report, out = run_ingest([src], "coco-json", tmp_path, labels_csv=labels)
    assert list(etl.read_clips(out).clip_id) == ["a"]
    assert reasons_by_id(report) == {
        "b": "label -1 is negative: numeric labels are class indices 0, 1, 2, ...",
        "c": "label -5 is negative: numeric labels are class indices 0, 1, 2, ...",
    }


@pytest.mark.parametrize(
    ("label_name", "expected"),
    [
        ("", "empty label name"),
        ("   ", "empty label name"),
        ("wave\nrm -rf", "control characters"),
        ("tab\there", "control characters"),
        ("x" * 5000, "label name of 5000 characters"),
    ],
)
def test_bad_label_names_are_rejected(tmp_path, label_name, expected):
    src = tmp_path / "in"
    src.mkdir()
    write_npz_clip(src / "bad.npz", moving_poses(1, 5, 17), confidences((1, 5, 17)), label_name=label_name)
    write_npz_clip(src / "good.npz", moving_poses(1, 5, 17), confidences((1, 5, 17)), label_name="wave")
    report, out = run_ingest([src], "npz", tmp_path)
    assert list(etl.read_clips(out).clip_id) == ["good"]
    assert expected in reasons_by_id(report)["bad"]


def test_unusual_but_valid_label_names_are_kept_verbatim(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    names = ["[/x]", "[bold]drink[/bold]", "pick up", "日本", "a'b\"c"]
    for i, name in enumerate(names):
        write_npz_clip(
            src / f"c{i}.npz", moving_poses(1, 5, 17, seed=i), confidences((1, 5, 17)), label_name=name
        )
    report, out = run_ingest([src], "npz", tmp_path)
    assert report.n_rejected == 0
    assert sorted(etl.read_clips(out).label_name) == sorted(names)


# --- image sizes beyond int64 ---------------------------------------------------------------------------------


def test_pyskl_img_shape_beyond_int64_is_a_reject(tmp_path):
    good = pyskl_annotation("good", 0, n_persons=1, n_frames=6)
    big = pyskl_annotation("big", 0, n_persons=1, n_frames=6)
    big["img_shape"] = (1e30, 1e30)
    huge_int = pyskl_annotation("hugeint", 0, n_persons=1, n_frames=6)
    huge_int["img_shape"] = (10**30, 640)
    nan = pyskl_annotation("nan", 0, n_persons=1, n_frames=6)
    nan["img_shape"] = (float("nan"), 640)
    path = write_pyskl(tmp_path / "sizes.pkl", [good, big, huge_int, nan], protocol=4)
    report, out = run_ingest([path], "pyskl", tmp_path)
    reasons = reasons_by_id(report)
    assert list(etl.read_clips(out).clip_id) == ["good"]
    assert "above the limit of 2147483647 pixels" in reasons["big"]
    assert "above the limit" in reasons["hugeint"]
    assert "img_shape height must be an integer, found nan" in reasons["nan"]


def test_coco_image_height_beyond_int64_is_a_reject(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for name, height in (("ok", 480), ("big", 10**30)):
        kp = moving_poses(1, 3, 17)
        data = {
            "images": [
                {"id": t, "file_name": f"{t:04d}.jpg", "height": height, "width": 640} for t in range(3)
            ],
            "annotations": [
                {
                    "image_id": t,
                    "keypoints": np.concatenate([kp[0, t], np.ones((17, 1))], 1).reshape(-1).tolist(),
                }
                for t in range(3)
            ],
        }
        (src / f"{name}.json").write_text(json.dumps(data))
    labels = tmp_path / "labels.csv"
    labels.write_text("clip_id,label_name\nok,wave\nbig,wave\n")
    report, out = run_ingest([src], "coco-json", tmp_path, labels_csv=labels)
    assert list(etl.read_clips(out).clip_id) == ["ok"]
    assert "above the limit of 2147483647 pixels" in reasons_by_id(report)["big"]


# --- allocation bombs, each read under a memory cap --------------------------------------------------------------

_CAPPED_READ = r"""
import json, resource, sys
from pathlib import Path
from etl.readers import ReadOptions, read_source
from etl.pose.clip import Reject
from etl.pose.skeleton import COCO17

def vm_bytes():
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024

cap = vm_bytes() + 768 * 2**20  # what is mapped now plus 768 MiB: every bomb asks for more than that
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
limits = {"max_clip_bytes": int(sys.argv[3])} if len(sys.argv) > 3 else {}
items = list(read_source([Path(sys.argv[1])], sys.argv[2], ReadOptions(layout=COCO17, **limits)))
print(json.dumps([[type(i).__name__, i.clip_id, getattr(i, "reason", "")] for i in items]))
"""


def read_capped(path: Path, fmt: str, *limit: str) -> list[list[str]]:
    """read_source in a child process whose address space is capped 768 MiB above its size after imports."""
    result = subprocess.run(
        [sys.executable, "-c", _CAPPED_READ, str(path), fmt, *limit],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _pickle_bytearray_bomb(path: Path, n: int) -> Path:
    # protocol 2: GLOBAL builtins.bytearray, LONG1 n, TUPLE1, REDUCE, STOP (32 bytes for n = 2**40)
    length = (n.bit_length() + 8) // 8
    path.write_bytes(
        b"\x80\x02cbuiltins\nbytearray\n\x8a"
        + bytes([length])
        + n.to_bytes(length, "little", signed=True)
        + b"\x85R."
    )
    return path


def _pickle_ndarray_bomb(path: Path, shape: tuple[int, int]) -> Path:
    # GLOBAL numpy.ndarray, MARK, BININT, BININT, TUPLE, TUPLE1, REDUCE, STOP: ndarray((15000, 15000)) = 1.8 GB
    body = b"".join(b"J" + struct.pack("<i", d) for d in shape)
    path.write_bytes(b"\x80\x02cnumpy\nndarray\n(" + body + b"t\x85R.")
    return path


def test_pickle_bytearray_bomb(tmp_path):
    path = _pickle_bytearray_bomb(tmp_path / "bomb.pkl", 2**40)
    assert path.stat().st_size <= 40
    [[kind, _, reason]] = read_capped(path, "pyskl")
    assert kind == "Reject"
    assert "refused builtins.bytearray(...) asking for 1099511627776 bytes" in reason
    assert "max_clip_bytes" in reason


def test_pickle_ndarray_bomb(tmp_path):
    path = _pickle_ndarray_bomb(tmp_path / "bomb.pkl", (15000, 15000))
    assert path.stat().st_size < 100
    [[kind, _, reason]] = read_capped(path, "pyskl")
    assert kind == "Reject"
    assert "refused numpy.ndarray(...) asking for 1800000000 bytes" in reason


def test_pickle_many_small_allocations_share_one_budget(tmp_path):
    # 200 x 8 MiB bytearrays with a 100 MiB budget: each alone is under it, together 1.6 GiB (over the cap)
    one = b"cbuiltins\nbytearray\n\x8a\x04" + (8 * 2**20).to_bytes(4, "little") + b"\x85R"
    path = tmp_path / "many.pkl"
    path.write_bytes(b"\x80\x02(" + one * 200 + b"l.")
    [[kind, _, reason]] = read_capped(path, "pyskl", str(100 * 2**20))
    assert kind == "Reject"
    assert "asked before in this file" in reason


def test_real_pickles_still_load_within_the_budget(tmp_path):
    path = write_pyskl(tmp_path / "ok.pkl", [pyskl_annotation("a", 0), pyskl_annotation("b", 1)], protocol=2)
    items = read_capped(path, "pyskl")
    assert [kind for kind, _, _ in items] == ["PoseClip", "PoseClip"]


def test_coco_track_id_per_detection_bomb(tmp_path):
    # 3000 frames, one detection each, each with its own track_id: (3000 persons, 3000 frames, 17, 2) = 1.7 GiB
    flat = np.concatenate([moving_poses(1, 1, 17)[0, 0], np.ones((17, 1))], 1).reshape(-1).round(1).tolist()
    dets = [{"image_id": t, "keypoints": flat, "score": 0.9, "track_id": t} for t in range(3000)]
    path = tmp_path / "tracks.json"
    path.write_text(json.dumps(dets))
    [[kind, clip_id, reason]] = read_capped(path, "coco-json")
    assert kind == "Reject"
    assert clip_id == "tracks"
    assert "3000 persons (tracks) in one clip, more than max_persons=1000" in reason


def test_coco_clip_over_the_byte_limit(tmp_path):
    path = write_coco_results(
        tmp_path / "c.json", moving_poses(2, 4, 17), confidences((2, 4, 17)), track_ids=True
    )
    items = list(read_source([path], "coco-json", ReadOptions(layout=COCO17, max_clip_bytes=1000)))
    assert "needs" in items[0].reason
    assert "max_clip_bytes=1000" in items[0].reason
    ok = list(read_source([path], "coco-json", ReadOptions(layout=COCO17)))
    assert isinstance(ok[0], PoseClip)
    assert ok[0].n_persons == 2


def test_hdf5_huge_empty_dataset(tmp_path):
    path = tmp_path / "empty.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("keypoints", shape=(10**6, 100, 17, 2), dtype="f4")  # 13.6 GB declared, no data
        f.attrs["label_name"] = "wave"
    assert path.stat().st_size < 100_000
    [[kind, _, reason]] = read_capped(path, "h5")
    assert kind == "Reject"
    assert "dataset /keypoints declares (1000000, 100, 17, 2) float32" in reason
    assert "max_clip_bytes" in reason


def test_npz_bomb(tmp_path):
    # an .npy header declaring (20000, 1000, 17, 2) float32 (2.5 GiB) in a 200-byte archive
    path = tmp_path / "bomb.npz"
    header = {"descr": "<f4", "fortran_order": False, "shape": (20000, 1000, 17, 2)}
    buf = __import__("io").BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("keypoints.npy", buf.getvalue() + b"\0" * 64)
    assert path.stat().st_size < 1000
    [[kind, _, reason]] = read_capped(path, "npz")
    assert kind == "Reject"
    assert "member keypoints.npy declares (20000, 1000, 17, 2) float32" in reason


def test_npz_member_unpacking_beyond_the_limit(tmp_path):
    path = tmp_path / "zeros.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("keypoints.npy", b"\0" * 3_000_000)  # 3 MB of zeros in a 3 KB member
    items = list(read_source([path], "npz", ReadOptions(layout=COCO17, max_clip_bytes=2_000_000)))
    assert "unpacks to 3000000 bytes, more than max_clip_bytes=2000000" in items[0].reason


def test_limit_options_on_the_command_line(tmp_path):
    path = write_coco_results(
        tmp_path / "two.json", moving_poses(2, 4, 17), confidences((2, 4, 17)), track_ids=True
    )
    labels = tmp_path / "labels.csv"
    labels.write_text("clip_id,label_name\ntwo,wave\n")
    args = ["ingest", str(path), "--labels", str(labels), "--out", str(tmp_path / "s.zarr")]
    rejected = runner.invoke(app, [*args, "--max-persons", "1"])
    assert rejected.exit_code == 1
    assert "more than max_persons=1" in rejected.output
    kept = runner.invoke(app, args)
    assert kept.exit_code == 0
    assert "1 read, 1 kept, 0 rejected" in kept.output
    assert ReadOptions(layout=COCO17).max_clip_bytes == DEFAULT_MAX_CLIP_BYTES
    with pytest.raises(etl.ActrecError, match="max_frames must be a positive integer"):
        ReadOptions(layout=COCO17, max_frames=0)


# --- complex values, HDF5 data from other files -------------------------------------------------------------


def test_complex_keypoints_are_rejected(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    kp = moving_poses(1, 5, 17).astype(np.complex64) + 1j
    np.savez(src / "cplx.npz", keypoints=kp.transpose(1, 0, 2, 3), label_name=np.array("wave"))
    write_npz_clip(src / "real.npz", moving_poses(1, 5, 17), confidences((1, 5, 17)), label_name="wave")
    report, out = run_ingest([src], "npz", tmp_path)
    assert list(etl.read_clips(out).clip_id) == ["real"]
    assert "'keypoints' is complex-valued (complex64)" in reasons_by_id(report)["cplx"]
    annotation = pyskl_annotation("c", 0, n_persons=1, n_frames=4)
    annotation["keypoint"] = annotation["keypoint"].astype(np.complex64)
    [reject] = list(
        read_source([write_pyskl(tmp_path / "c.pkl", [annotation])], "pyskl", ReadOptions(COCO17))
    )
    assert isinstance(reject, Reject)
    assert "'keypoint' is complex-valued" in reject.reason


def test_hdf5_external_links_and_external_storage_are_refused(tmp_path):
    other = write_h5_clip(
        tmp_path / "other.h5", moving_poses(1, 5, 17), confidences((1, 5, 17)), {"label_name": "x"}
    )
    linked = tmp_path / "linked.h5"
    with h5py.File(linked, "w") as f:
        f["keypoints"] = h5py.ExternalLink(str(other), "/keypoints")
        f.attrs["label_name"] = "wave"
    [reject] = list(read_source([linked], "h5", ReadOptions(COCO17)))
    assert isinstance(reject, Reject)
    assert "/keypoints is an external link to" in reject.reason
    many = tmp_path / "many.h5"
    with h5py.File(many, "w") as f:
        f.create_group("clips")
        f["clips/a"] = h5py.ExternalLink(str(other), "/")
    [reject] = list(read_source([many], "h5", ReadOptions(COCO17)))
    assert "/clips/a is an external link" in reject.reason
    raw = tmp_path / "secret.bin"
    raw.write_bytes(np.arange(5 * 17 * 2, dtype="<f4").tobytes())
    ext = tmp_path / "ext.h5"
    with h5py.File(ext, "w") as f:
        f.create_dataset(
            "keypoints", shape=(5, 17, 2), dtype="<f4", external=[(str(raw), 0, h5py.h5f.UNLIMITED)]
        )
        f.attrs["label_name"] = "wave"
    [reject] = list(read_source([ext], "h5", ReadOptions(COCO17)))
    assert "keeps its data in external file(s)" in reject.reason


# --- non-ASCII file names ------------------------------------------------------------------------------------


def test_non_ascii_names_give_distinct_readable_ids(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    names = ["ünï日本", "ünï日本語", "日本", "中文", "über", "uber", "s01 wave"]
    rows = ["clip_id,label_name"]
    for i, name in enumerate(names):
        write_coco_results(src / f"{name}.json", moving_poses(1, 4, 17, seed=i), confidences((1, 4, 17)))
        rows.append(f"{name},wave")
    labels = tmp_path / "labels.csv"
    labels.write_text("\n".join(rows) + "\n", encoding="utf-8")
    report, out = run_ingest([src], "coco-json", tmp_path, labels_csv=labels)
    assert report.n_rejected == 0, report.rejects  # no duplicates, every manifest row matched
    ids = set(etl.read_clips(out).clip_id)
    assert len(ids) == len(names)
    assert safe_clip_id("ünï日本").startswith("uni_")
    assert safe_clip_id("über").startswith("uber_")
    assert safe_clip_id("uber") == "uber"
    assert safe_clip_id("s01 wave") == "s01_wave"  # ASCII ids unchanged
    assert safe_clip_id("日本").startswith("u_")
    assert safe_clip_id("日本") != safe_clip_id("中文")
    # the same name in NFC (typed) and NFD (macOS file names) is one id
    assert safe_clip_id("\u00fcber") == safe_clip_id("u\u0308ber")
    for cid in ids:
        assert safe_clip_id(cid) == cid


def test_documented_limits_match_the_code():
    import inspect

    from etl import cli
    from etl.pose import limits

    docs = (Path(__file__).resolve().parents[1] / "docs" / "formats.md").read_text()
    params = inspect.signature(cli.ingest).parameters
    for field, default in (
        ("max_persons", limits.DEFAULT_MAX_PERSONS),
        ("max_frames", limits.DEFAULT_MAX_FRAMES),
        ("max_clip_bytes", limits.DEFAULT_MAX_CLIP_BYTES),
    ):
        option = "--" + field.replace("_", "-")
        assert f"| `{option}` (`{field}`) | {default}" in docs
        assert params[field].default == default == getattr(ReadOptions(layout=COCO17), field)
    assert f"at most {limits.MAX_IMAGE_SIDE}" in docs
    assert f"0 to {limits.MAX_CLASSES - 1}" in docs
    assert f"1-{limits.MAX_LABEL_CHARS} characters" in docs
    assert safe_clip_id("ünï日本") in docs
    assert safe_clip_id("日本") in docs


def test_documented_query_grammar_matches_the_code():
    from etl.stores.safe_query import METHODS, STR_METHODS

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for name in METHODS:
        assert f"`{name}`" in readme
    for name in STR_METHODS:
        assert f"`str.{name}`" in readme


@pytest.mark.parametrize(
    ("text", "expected"),
    [("[" * 100_000, "JSON nested too deeply to read"), ("[" + "9" * 5000 + "]", "unreadable JSON value")],
)
def test_json_that_python_cannot_parse_is_a_reject(tmp_path, text, expected):
    src = tmp_path / "in"
    src.mkdir()
    (src / "bad.json").write_text(text)
    write_coco_results(src / "good.json", moving_poses(1, 4, 17), confidences((1, 4, 17)))
    items = list(read_source([src], "coco-json", ReadOptions(COCO17)))
    assert [type(i).__name__ for i in items] == ["Reject", "PoseClip"]
    assert expected in items[0].reason


def test_mat_zip_bomb(tmp_path):
    # compressed zeros: a 100 KB file declaring a (4000, 4000) double matrix (128 MB once loaded), read with a
    # 64 MiB limit (the same check refuses a 3 MB file of (20000, 20000) under the default 1 GiB)
    import scipy.io

    path = tmp_path / "labels" / "0001.mat"
    path.parent.mkdir()
    scipy.io.savemat(path, {"x": np.zeros((4000, 4000)), "y": np.zeros((1, 1))}, do_compression=True)
    assert path.stat().st_size < 200_000
    [[kind, _, reason]] = read_capped(path, "penn-action", str(64 * 2**20))
    assert kind == "Reject"
    assert "variable 'x' (double) declares (4000, 4000) float64 = 122 MiB, more than max_clip_bytes" in reason


def test_newer_readers_check_the_limits_too(tmp_path):
    # ntu-skeleton, as an example of the readers added later (dlc, kinetics, mediapipe, mmpose, ntu): the same
    # person/frame/byte check runs before their (M, T, V) arrays are built
    from fixtures_formats import ntu_bodies, write_ntu_skeleton

    from etl.pose.skeleton import NTU25

    path = write_ntu_skeleton(tmp_path / "S001C001P001R001A001.skeleton", ntu_bodies(2, 6), ["1", "2"])
    options = {"layout": NTU25}
    [kept] = list(read_source([path], "ntu-skeleton", ReadOptions(**options)))
    assert isinstance(kept, PoseClip)
    assert kept.n_persons == 2
    [reject] = list(read_source([path], "ntu-skeleton", ReadOptions(**options, max_persons=1)))
    assert "2 persons (tracks) in one clip, more than max_persons=1" in reject.reason
    [reject] = list(read_source([path], "ntu-skeleton", ReadOptions(**options, max_frames=5)))
    assert "6 frames in one clip, more than max_frames=5" in reject.reason
