"""etl/commands/download.py against a local HTTP server on 127.0.0.1 (no network): checksums, resume, safe unpacking."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from etl.commands import download as dl
from etl.common.errors import ActrecError


class _Files:
    """What the server serves, and what it saw."""

    def __init__(self):
        self.blobs: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.ignore_range = False
        self.drop_after: int | None = None  # close the first response after this many body bytes


def _handler(files: _Files):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def do_GET(self):
            rng = self.headers.get("Range")
            files.requests.append((self.path, rng))
            body = files.blobs.get(self.path)
            if body is None:
                self.send_error(404)
                return
            start, status = 0, 200
            if rng and not files.ignore_range:
                start = int(rng.split("=")[1].split("-")[0])
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
            chunk = body[start:]
            self.send_response(status)
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(chunk)))
            self.end_headers()
            if files.drop_after is not None:
                n, files.drop_after = files.drop_after, None
                self.wfile.write(chunk[:n])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(chunk)

    return Handler


@pytest.fixture
def server():
    files = _Files()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(files))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield files, base
    finally:
        httpd.shutdown()
        httpd.server_close()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


PAYLOAD = os.urandom(300_000)


def test_download_success_with_progress(server, tmp_path):
    files, base = server
    files.blobs["/data.bin"] = PAYLOAD
    seen = []
    dest = tmp_path / "data.bin"
    digest = dl.download_file(
        f"{base}/data.bin", dest, sha256=_sha(PAYLOAD), progress=lambda d, t: seen.append((d, t))
    )
    assert digest == _sha(PAYLOAD)
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "data.bin.part").exists()
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    # already there with the right checksum: no second request
    n = len(files.requests)
    dl.download_file(f"{base}/data.bin", dest, sha256=_sha(PAYLOAD))
    assert len(files.requests) == n


def test_checksum_mismatch_deletes_and_explains(server, tmp_path):
    files, base = server
    files.blobs["/data.bin"] = PAYLOAD
    dest = tmp_path / "data.bin"
    with pytest.raises(ActrecError, match="checksum mismatch") as exc:
        dl.download_file(f"{base}/data.bin", dest, sha256="0" * 64)
    assert "0" * 64 in str(exc.value)
    assert _sha(PAYLOAD) in str(exc.value)
    assert not dest.exists()
    assert not (tmp_path / "data.bin.part").exists()


def test_resume_of_a_partial_download(server, tmp_path):
    files, base = server
    files.blobs["/data.bin"] = PAYLOAD
    dest = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:100_000])
    seen = []
    dl.download_file(
        f"{base}/data.bin", dest, sha256=_sha(PAYLOAD), progress=lambda d, t: seen.append((d, t))
    )
    assert files.requests == [("/data.bin", "bytes=100000-")]
    assert seen[0] == (100_000, len(PAYLOAD))  # progress starts where the partial file ended
    assert dest.read_bytes() == PAYLOAD


def test_dropped_connection_is_resumed_with_range(server, tmp_path):
    files, base = server
    files.blobs["/data.bin"] = PAYLOAD
    files.drop_after = 50_000
    dest = tmp_path / "data.bin"
    dl.download_file(f"{base}/data.bin", dest, sha256=_sha(PAYLOAD), retries=2)
    assert dest.read_bytes() == PAYLOAD
    assert files.requests[0] == ("/data.bin", None)
    assert files.requests[1] == ("/data.bin", "bytes=50000-")


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    files, base = server
    files.blobs["/data.bin"] = PAYLOAD
    files.ignore_range = True
    (tmp_path / "data.bin.part").write_bytes(b"garbage" * 10)
    dest = tmp_path / "data.bin"
    dl.download_file(f"{base}/data.bin", dest, sha256=_sha(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD


def test_complete_part_file_416(server, tmp_path):
    files, base = server
    files.blobs["/data.bin"] = PAYLOAD
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD)
    dest = tmp_path / "data.bin"
    dl.download_file(f"{base}/data.bin", dest, sha256=_sha(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD


def test_http_404_is_a_clear_error(server, tmp_path):
    _, base = server
    with pytest.raises(ActrecError, match="HTTP 404"):
        dl.download_file(f"{base}/missing.bin", tmp_path / "x", sha256=None)


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tar(entries: dict[str, bytes], symlink: tuple[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        if symlink:
            info = tarfile.TarInfo(symlink[0])
            info.type = tarfile.SYMTYPE
            info.linkname = symlink[1]
            tf.addfile(info)
    return buf.getvalue()


def test_install_url_zip_extracts_with_members_and_strip_then_skips(server, tmp_path):
    files, base = server
    blob = _zip({"top/labels/0001.mat": b"a", "top/labels/0002.mat": b"b", "top/README": b"r"})
    files.blobs["/set.zip"] = blob
    dest = tmp_path / "set"
    report = dl.install_url(f"{base}/set.zip", dest, sha256=_sha(blob), members=("*/labels/*.mat",), strip=1)
    assert report.extracted == 2
    assert not report.skipped
    assert (dest / "labels" / "0001.mat").read_bytes() == b"a"
    assert not (dest / "README").exists()
    assert not (dest / "set.zip").exists()
    assert (dest / dl.MARKER).is_file()
    n = len(files.requests)
    again = dl.install_url(f"{base}/set.zip", dest, sha256=_sha(blob), members=("*/labels/*.mat",), strip=1)
    assert again.skipped
    assert len(files.requests) == n


@pytest.mark.parametrize(
    ("blob_kind", "entries", "symlink"),
    [
        ("zip", {"ok.txt": b"fine", "../evil.txt": b"x"}, None),
        ("zip", {"ok.txt": b"fine", "/tmp/actrec-evil.txt": b"x"}, None),
        ("tar", {"ok.txt": b"fine", "a/../../evil.txt": b"x"}, None),
        ("tar", {"ok.txt": b"fine"}, ("link", "/etc/passwd")),
    ],
)
def test_unsafe_archive_is_refused_and_nothing_extracted(server, tmp_path, blob_kind, entries, symlink):
    files, base = server
    blob = _zip(entries) if blob_kind == "zip" else _tar(entries, symlink)
    name = "/bad.zip" if blob_kind == "zip" else "/bad.tar.gz"
    files.blobs[name] = blob
    dest = tmp_path / "inner" / "dest"
    with pytest.raises(ActrecError, match=r"absolute path|leaves the destination|link"):
        dl.install_url(f"{base}{name}", dest, sha256=_sha(blob))
    assert not (dest / "ok.txt").exists()  # checked before anything is written
    assert not (tmp_path / "inner" / "evil.txt").exists()
    assert not (tmp_path / "evil.txt").exists()
    assert not (dest / dl.MARKER).exists()


def test_unknown_dataset_name():
    with pytest.raises(ActrecError, match=r"unknown dataset 'nope'.*jhmdb-ddnet14"):
        dl.install_dataset("nope")


def test_unverified_entry_is_refused_without_flags(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("no request may be made")

    monkeypatch.setattr(dl.urllib.request, "urlopen", no_network)
    with pytest.raises(ActrecError, match=r"--sha256 HEX.*--allow-unverified"):
        dl.install_dataset("utd-mhad-skeleton", tmp_path / "utd")
    with pytest.raises(ActrecError, match="64 hex digits"):
        dl.install_dataset("utd-mhad-skeleton", tmp_path / "utd", sha256="abc")
    with pytest.raises(ActrecError, match="one-file datasets"):
        dl.install_dataset("jhmdb-ddnet14", tmp_path / "j", sha256="0" * 64)


def test_user_sha256_pins_an_unverified_entry(server, tmp_path, monkeypatch):
    files, base = server
    blob = _zip({"Skeleton/a1_s1_t1_skeleton.mat": b"m"})
    files.blobs["/Skeleton.zip"] = blob
    entry = dl.REGISTRY["utd-mhad-skeleton"]
    local = dl.DatasetEntry(
        **{
            **entry.__dict__,
            "files": (dl.RemoteFile(f"{base}/Skeleton.zip", "Skeleton.zip", None, None, "zip"),),
        }
    )
    monkeypatch.setitem(dl.REGISTRY, "utd-mhad-skeleton", local)
    with pytest.raises(ActrecError, match="checksum mismatch"):
        dl.install_dataset("utd-mhad-skeleton", tmp_path / "utd", sha256="1" * 64)
    report = dl.install_dataset("utd-mhad-skeleton", tmp_path / "utd", sha256=_sha(blob))
    assert report.extracted == 1
    assert report.files[0]["verified"]
    assert (tmp_path / "utd" / "Skeleton" / "a1_s1_t1_skeleton.mat").read_bytes() == b"m"


def test_allow_unverified_still_checks_the_content_digest(server, tmp_path, monkeypatch):
    files, base = server
    blob = _zip({"repo-abc/labels/0001.mat": b"one"})
    files.blobs["/penn.zip"] = blob
    entry = dl.REGISTRY["penn-action-labels"]
    remote = dl.RemoteFile(f"{base}/penn.zip", "penn.zip", None, None, "zip", ("*/labels/*.mat",), 1)
    monkeypatch.setitem(
        dl.REGISTRY, "penn-action-labels", dl.DatasetEntry(**{**entry.__dict__, "files": (remote,)})
    )
    with pytest.raises(ActrecError, match="do not match the registry"):
        dl.install_dataset("penn-action-labels", tmp_path / "penn", allow_unverified=True)
    assert not (tmp_path / "penn" / "labels" / "0001.mat").exists()
    # the same files with the right digest install, flagged as unverified
    digest = hashlib.sha256(f"labels/0001.mat\t{_sha(b'one')}\n".encode()).hexdigest()
    monkeypatch.setitem(
        dl.REGISTRY,
        "penn-action-labels",
        dl.DatasetEntry(**{**entry.__dict__, "files": (remote,), "content_sha256": digest}),
    )
    report = dl.install_dataset("penn-action-labels", tmp_path / "penn", allow_unverified=True)
    assert report.unverified == ["penn.zip"]
    assert report.extracted == 1


def test_list_datasets_is_honest_about_checksums():
    rows = {r["name"]: r for r in dl.list_datasets()}
    assert rows["jhmdb-ddnet14"]["verified"] is True
    assert rows["utd-mhad-skeleton"]["verified"] is False
    assert rows["penn-action-labels"]["verified"] is False
    assert all(r["citation"] and r["licence"] for r in rows.values())


@pytest.mark.shared
def test_registry_checksums_match_the_shared_copies(shared_dir):
    """The pinned sha256 values were computed from ../shared/data: they must still describe those files."""
    for f in dl.REGISTRY["jhmdb-ddnet14"].files:
        path = shared_dir / "data" / "jhmdb_ddnet14" / f.name
        assert path.stat().st_size == f.size
        assert dl.sha256_file(path) == f.sha256
    penn = shared_dir / "data" / "penn_action"
    labels = sorted((penn / "labels").glob("*.mat"))
    assert len(labels) == 2326
    assert dl.tree_digest(penn, labels) == dl.REGISTRY["penn-action-labels"].content_sha256


def test_unknown_archive_and_bad_scheme(tmp_path):
    with pytest.raises(ActrecError, match="--archive"):
        dl.install_url(
            "http://127.0.0.1:9/x.bin", tmp_path, sha256=None, allow_unverified=True, archive="rar"
        )
    with pytest.raises(ActrecError, match="only http"):
        dl.download_file("ftp://example.org/x", tmp_path / "x", sha256=None)


def test_member_paths():
    assert dl._member_target("a/b/c.txt", 1).as_posix() == "b/c.txt"
    assert dl._member_target("a/", 1) is None
    for bad in ("../x", "a/../../x", "/abs", "C:/x", "a\\..\\..\\x"):
        with pytest.raises(ActrecError):
            dl._member_target(bad, 0)


def test_guess_archive():
    assert dl.guess_archive("x.ZIP") == "zip"
    assert dl.guess_archive("x.tar.gz") == "tar"
    assert dl.guess_archive("x.tgz") == "tar"
    assert dl.guess_archive("x.pkl") == "none"


def test_install_plain_files_skips_when_installed_and_repairs_a_deleted_file(server, tmp_path):
    files, base = server
    files.blobs["/a.pkl"], files.blobs["/b.pkl"] = b"A" * 1000, b"B" * 2000
    remote = tuple(
        dl.RemoteFile(f"{base}/{n}", n, _sha(files.blobs[f"/{n}"]), len(files.blobs[f"/{n}"]))
        for n in ("a.pkl", "b.pkl")
    )
    dest = tmp_path / "set"
    seen = []
    report = dl.install(remote, dest, name="set", progress=lambda n, d, t: seen.append((n, d, t)))
    assert [f["verified"] for f in report.files] == [True, True]
    assert report.unverified == []
    assert ("b.pkl", 2000, 2000) in seen
    n = len(files.requests)
    assert dl.install(remote, dest, name="set").skipped
    assert len(files.requests) == n
    (dest / "b.pkl").unlink()
    again = dl.install(remote, dest, name="set")
    assert not again.skipped
    assert (dest / "b.pkl").read_bytes() == b"B" * 2000
    assert [p for p, _ in files.requests[n:]] == ["/b.pkl"]  # a.pkl was already there with its checksum
