"""`actrec-etl download`: checksum-verified downloads of public pose datasets (and of any URL + sha256).

How one file is fetched: stream it with urllib into `<name>.part` (an interrupted download resumes with an HTTP
Range request), hash what arrived, compare with the expected sha256 (a mismatch deletes the file and stops with
an error), rename it into place, then unpack it (zip / tar) after checking EVERY member first: absolute paths,
`..` components, links and device files make the whole archive refused, nothing extracted. A marker file
(`.actrec-download.json`) records what was installed, so a second call with the same arguments does nothing.

The registry below lists only datasets with a stable URL (an official file, or a repository blob pinned to a
commit). Where we could not check the sha256 of the exact bytes behind the URL, it is `None`, and installing
it is REFUSED unless the user gives the checksum (`--sha256`) or says `--allow-unverified`; the computed
sha256 is then printed so the user can pin it.

Library code: no printing. Progress goes through a callback `progress(done_bytes, total_bytes_or_None)`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import stat
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from etl.common.errors import ActrecError

MARKER = ".actrec-download.json"
CHUNK = 1 << 16
ARCHIVES = ("none", "zip", "tar")
USER_AGENT = "actrec-download/1"

Progress = Callable[[int, "int | None"], None]


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: where it is, what it must hash to, and how to unpack it."""

    url: str
    name: str  # file name under the destination folder (archives are deleted after unpacking)
    sha256: str | None  # None: not verified by us (installing needs --sha256 or --allow-unverified)
    size: int | None = None  # bytes, where known (for the progress bar and a sanity check)
    archive: str = "none"  # none | zip | tar (any compression tarfile reads)
    members: tuple[str, ...] = ()  # fnmatch patterns of archive members to extract (empty: all)
    strip: int = 0  # leading path components dropped from member names (like tar --strip-components)


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    description: str
    files: tuple[RemoteFile, ...]
    licence: str
    citation: str
    checksum_note: str  # where the sha256 values come from, or why there are none
    ingest_hint: str = ""  # how to ingest the installed files
    content_sha256: str | None = None  # digest of the extracted tree (see tree_digest), checked where given


_DDNET = (
    "https://raw.githubusercontent.com/fandulu/DD-Net/f26a9994b0bafc41096fa269eab89c2757d71499/data/JHMDB"
)
_PENN_REPO = "samaonline/Hierarchical-Model-for-Long-term-Video-Prediction"
_PENN_COMMIT = "675580d4d239f6dd07851b5354ff76ad6ea6dae6"

REGISTRY: dict[str, DatasetEntry] = {
    "jhmdb-ddnet14": DatasetEntry(
        name="jhmdb-ddnet14",
        description="JHMDB ground-truth 2D joints, DD-Net's 14-class subset (609 clips, 3 splits) + split lists",
        files=tuple(
            RemoteFile(f"{_DDNET}/{fname}", fname, digest, size)
            for fname, digest, size in (
                (
                    "GT_train_1.pkl",
                    "a64718621ddcc74438506b5b2f77df509d284b60cd2fef197a4a3a29c6557805",
                    3681942,
                ),
                (
                    "GT_test_1.pkl",
                    "f27972c6dd3267b39055a4242dda5becff6afe89c26f62d5e2100f9e1921bcb0",
                    1432996,
                ),
                (
                    "GT_train_2.pkl",
                    "7dd80b77c54f977c5252d1beb287c00e8dd9affa4225f2091cd468598f504824",
                    3667060,
                ),
                (
                    "GT_test_2.pkl",
                    "af047ea74d910f8ba44f37873967194185c98fb4945f4d07dbe018bd49b8e10c",
                    1447878,
                ),
                (
                    "GT_train_3.pkl",
                    "554d51b49146f3496ea4247161a50ec0af5af77c7f08a3454dc0075012535e6b",
                    3651055,
                ),
                (
                    "GT_test_3.pkl",
                    "5d067993fde457341cfea1c262128ed9f6e9cf40671476ac85bb8ddbe6282598",
                    1463883,
                ),
                ("splits.zip", "e1de931cbf9cfac3674f50fb73f1c4753e231204434546da9821337298455d16", 43785),
            )
        ),
        licence="JHMDB: research use, no licence text found for the annotations; DD-Net's code is MIT.",
        citation="H. Jhuang et al., 'Towards understanding action recognition', ICCV 2013; F. Yang et al., "
        "'Make Skeleton-based Action Recognition Model Smaller, Faster and Better', ACM MM Asia 2019.",
        checksum_note="sha256 and sizes of the files of fandulu/DD-Net at the pinned commit (raw blobs at a "
        "commit do not change). Only 14 of 21 classes.",
        ingest_hint="actrec-etl ingest DEST --format jhmdb-ddnet --layout jhmdb15 --split-protocol 1",
    ),
    "penn-action-labels": DatasetEntry(
        name="penn-action-labels",
        description="Penn Action per-clip 2D joint annotations (labels/NNNN.mat, 2326 clips, 15 classes), "
        "from a GitHub repository that redistributes the official labels/ folder, pinned to a commit (the whole "
        "repository archive is downloaded, size unknown; only labels/*.mat is kept)",
        files=(
            RemoteFile(
                f"https://github.com/{_PENN_REPO}/archive/{_PENN_COMMIT}.zip",
                "penn_action_labels.zip",
                None,
                None,
                archive="zip",
                members=("*/labels/*.mat",),
                strip=1,
            ),
        ),
        licence="No explicit licence; the authors ask to cite the paper (research use).",
        citation="W. Zhang, M. Zhu, K. Derpanis, 'From Actemes to Action: A Strongly-supervised Representation "
        "for Detailed Action Understanding', ICCV 2013. Official page: http://dreamdragon.github.io/PennAction/",
        checksum_note="GitHub builds commit archives on the fly and does not promise identical bytes over time, "
        "so the archive has no sha256 here (give --sha256 or --allow-unverified). The EXTRACTED labels/ tree is "
        "checked against content_sha256 (computed from the repository's labels/ blobs at the pinned commit) in "
        "every case.",
        ingest_hint="actrec-etl ingest DEST/labels --format penn-action --layout penn13",
        content_sha256="a661435785900e0bd44862cef987c1091eb575b0ac7ce52627e3bfce9dc0bd08",
    ),
    "utd-mhad-skeleton": DatasetEntry(
        name="utd-mhad-skeleton",
        description="UTD-MHAD Kinect v1 skeletons (861 sequences, 27 classes), the official Skeleton.zip",
        files=(
            RemoteFile(
                "http://www.utdallas.edu/~kehtar/UTD-MAD/Skeleton.zip",
                "Skeleton.zip",
                None,
                None,
                archive="zip",
            ),
        ),
        licence="Released by the authors for research; no licence text. Cite the paper.",
        citation="C. Chen, R. Jafari, N. Kehtarnavaz, 'UTD-MHAD: A Multimodal Dataset for Human Action "
        "Recognition Utilizing a Depth Camera and a Wearable Inertial Sensor', ICIP 2015.",
        checksum_note="The official URL (linked from https://www.utdallas.edu/~kehtar/UTD-MHAD.html, plain "
        "http) was not reachable from where this registry was written: no sha256 (give --sha256 or "
        "--allow-unverified).",
        ingest_hint="actrec-etl ingest DEST --format utd-mhad --layout kinect20",
    ),
}


@dataclass
class InstallReport:
    name: str
    dest: Path
    files: list[dict] = field(default_factory=list)  # {name, url, sha256, bytes, verified}
    extracted: int = 0  # files written by unpacking
    skipped: bool = False  # already installed with the same checksums (marker found)
    unverified: list[str] = field(default_factory=list)  # names installed without a known checksum


# ---------------------------------------------------------------------------------------- registry access


def get_entry(name: str) -> DatasetEntry:
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise ActrecError(
            f"unknown dataset {name!r}; known: {known} (or give --url URL --sha256 HEX for any file)"
        ) from None


def list_datasets() -> list[dict]:
    """One row per registry entry, for `actrec-etl download --list`."""
    return [
        {
            "name": e.name,
            "description": e.description,
            "files": len(e.files),
            "bytes": sum(f.size for f in e.files) if all(f.size for f in e.files) else None,
            "verified": all(f.sha256 for f in e.files),
            "licence": e.licence,
            "citation": e.citation,
            "checksum_note": e.checksum_note,
            "ingest": e.ingest_hint,
        }
        for e in REGISTRY.values()
    ]


# ---------------------------------------------------------------------------------------- one file


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_hex(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    s = sha256.strip().lower()
    if len(s) != 64 or any(c not in "0123456789abcdef" for c in s):
        raise ActrecError(f"--sha256 must be 64 hex digits, not {sha256!r}")
    return s


def download_file(
    url: str,
    dest: Path,
    *,
    sha256: str | None,
    size: int | None = None,
    progress: Progress | None = None,
    timeout: float = 60.0,
    retries: int = 3,
) -> str:
    """Download `url` to `dest` via `dest.part` (resumed with an HTTP Range request if it exists), verify the
    sha256 (when given) and rename into place. Returns the sha256 of the file.

    A file already at `dest` with the expected checksum is kept (no request). On a checksum mismatch the
    partial file is deleted and ActrecError raised. Connection errors are retried `retries` times, each time
    resuming from what arrived."""
    sha256 = _check_hex(sha256)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if sha256 and dest.is_file() and sha256_file(dest) == sha256:
        return sha256
    part = dest.with_name(dest.name + ".part")
    if urlparse(url).scheme not in ("http", "https", "file"):
        raise ActrecError(f"{url}: only http(s) and file URLs can be downloaded")
    for attempt in range(retries + 1):
        try:
            _fetch(url, part, size=size, progress=progress, timeout=timeout)
            break
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            if isinstance(exc, urllib.error.HTTPError) and exc.code < 500 and exc.code != 429:
                raise ActrecError(f"{url}: HTTP {exc.code} {exc.reason}") from None
            if attempt == retries:
                raise ActrecError(
                    f"{url}: download failed after {retries + 1} attempts ({exc}); run again to resume "
                    f"from {part} ({part.stat().st_size if part.exists() else 0} bytes so far)"
                ) from None
            time.sleep(min(2**attempt, 10))
    actual = sha256_file(part)
    if sha256 and actual != sha256:
        got = part.stat().st_size
        part.unlink()
        raise ActrecError(
            f"{url}: checksum mismatch: expected sha256 {sha256}, got {actual} ({got} bytes); the download "
            f"was deleted. The file behind the URL changed, or the transfer was corrupted: nothing installed."
        )
    if size is not None and part.stat().st_size != size and sha256 is None:
        got = part.stat().st_size
        part.unlink()
        raise ActrecError(f"{url}: expected {size} bytes, got {got}; the download was deleted")
    os.replace(part, dest)
    return actual


def _fetch(url: str, part: Path, *, size: int | None, progress: Progress | None, timeout: float) -> None:
    """Append the rest of `url` to `part` (Range request from its current size)."""
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have == size:
        return  # complete already; the checksum decides
    if size is not None and have > size:
        part.unlink()
        have = 0
    headers = {"User-Agent": USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # the URL's scheme is checked above
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing after `have`: the partial file is complete (checksum decides)
            return
        raise
    with response:
        status = getattr(response, "status", 200)
        if have and status == 206 and _range_start(response.headers.get("Content-Range")) == have:
            mode, done = "ab", have
        else:  # 200: the server ignored the Range header (or there was none): start over
            mode, done = "wb", 0
        length = response.headers.get("Content-Length")
        total = done + int(length) if length is not None else size
        if progress:
            progress(done, total)
        with open(part, mode) as out:
            while True:
                block = response.read(CHUNK)
                if not block:
                    break
                out.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
        if length is not None and done < total:
            raise ConnectionError(f"connection closed after {done} of {total} bytes")


def _range_start(content_range: str | None) -> int | None:
    """The first byte of a `Content-Range: bytes START-END/TOTAL` header."""
    if not content_range or not content_range.startswith("bytes "):
        return None
    try:
        return int(content_range[6:].split("-", 1)[0])
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------- unpacking


def _member_target(name: str, strip: int) -> PurePosixPath | None:
    """The safe relative path of an archive member after stripping, None for a member stripped away; raises
    ActrecError for an absolute path or a `..` component."""
    raw = name.replace("\\", "/")
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":"):
        raise ActrecError(f"archive member {name!r} has an absolute path")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ActrecError(f"archive member {name!r} leaves the destination folder ('..')")
    parts = parts[strip:]
    return PurePosixPath(*parts) if parts else None


def _wanted(name: str, patterns: tuple[str, ...]) -> bool:
    return not patterns or any(fnmatch.fnmatchcase(name, p) for p in patterns)


def safe_extract(
    archive: Path, dest: Path, *, kind: str, members: tuple[str, ...] = (), strip: int = 0
) -> list[Path]:
    """Unpack the members of `archive` matching `members` into `dest`, after checking ALL members: one with an
    absolute path, a `..` component, a link or a device makes the archive refused and nothing is written."""
    try:
        return _extract(Path(archive), Path(dest), kind=kind, members=members, strip=strip)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        raise ActrecError(
            f"{Path(archive).name} is not a readable {kind} archive ({exc}): wrong --archive, or "
            "the server sent something else (an HTML error page?)"
        ) from exc


def _extract(archive: Path, dest: Path, *, kind: str, members: tuple[str, ...], strip: int) -> list[Path]:
    if kind == "zip":
        with zipfile.ZipFile(archive) as zf:
            plan = []
            for info in zf.infolist():
                target = _member_target(info.filename, strip)
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise ActrecError(f"{archive.name}: member {info.filename!r} is a symbolic link: refused")
                if info.is_dir() or target is None or not _wanted(info.filename, members):
                    continue
                plan.append((info, target))
            written = []
            for info, target in plan:
                out = dest.joinpath(*target.parts)
                out.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
                written.append(out)
            return written
    if kind == "tar":
        with tarfile.open(archive, "r:*") as tf:
            plan = []
            for m in tf.getmembers():
                target = _member_target(m.name, strip)
                if m.issym() or m.islnk():
                    raise ActrecError(f"{archive.name}: member {m.name!r} is a link: refused")
                if not (m.isfile() or m.isdir()):
                    raise ActrecError(f"{archive.name}: member {m.name!r} is not a regular file: refused")
                if m.isdir() or target is None or not _wanted(m.name, members):
                    continue
                plan.append((m, target))
            written = []
            for m, target in plan:
                out = dest.joinpath(*target.parts)
                out.parent.mkdir(parents=True, exist_ok=True)
                src = tf.extractfile(m)
                assert src is not None  # a regular file (checked above)
                with src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
                written.append(out)
            return written
    raise ActrecError(f"unknown archive type {kind!r}; one of {', '.join(ARCHIVES)}")


def guess_archive(name: str) -> str:
    low = name.lower()
    if low.endswith(".zip"):
        return "zip"
    if low.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")):
        return "tar"
    return "none"


def tree_digest(root: Path, files: list[Path] | None = None) -> str:
    """sha256 over the sorted lines `relative/posix/path<TAB>sha256(file)` of the files under root (all files,
    or `files`), ignoring the marker: one hex string that pins a whole extracted folder."""
    root = Path(root)
    paths = files if files is not None else [p for p in root.rglob("*") if p.is_file()]
    lines = sorted(f"{p.relative_to(root).as_posix()}\t{sha256_file(p)}\n" for p in paths if p.name != MARKER)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


# ---------------------------------------------------------------------------------------- install


def _read_marker(dest: Path) -> dict | None:
    try:
        return json.loads((dest / MARKER).read_text())
    except (OSError, ValueError):
        return None


def install(
    files: tuple[RemoteFile, ...],
    dest: Path,
    *,
    name: str,
    allow_unverified: bool = False,
    content_sha256: str | None = None,
    progress: Callable[[str, int, int | None], None] | None = None,
    force: bool = False,
) -> InstallReport:
    """Download, verify and unpack `files` into `dest`; write the marker. `progress(file_name, done, total)`."""
    dest = Path(dest)
    unverified = [f.name for f in files if not f.sha256]
    if unverified and not allow_unverified:
        raise ActrecError(
            f"{name}: no known sha256 for {', '.join(unverified)}, so the download cannot be verified. Give the "
            f"checksum with --sha256 HEX (from a source you trust), or accept the risk with --allow-unverified "
            f"(the computed sha256 is printed so you can pin it next time)."
        )
    marker = _read_marker(dest)
    if marker and not force and marker.get("name") == name and _marker_matches(marker, files, dest):
        return InstallReport(name=name, dest=dest, files=marker.get("files", []), skipped=True)
    dest.mkdir(parents=True, exist_ok=True)
    report = InstallReport(name=name, dest=dest, unverified=unverified)
    extracted: list[Path] = []
    for f in files:
        if Path(f.name).name != f.name or f.name in ("", ".", ".."):
            raise ActrecError(f"bad file name {f.name!r}: a plain file name is needed")
        callback = (lambda done, total, _n=f.name: progress(_n, done, total)) if progress else None
        target = dest / f.name
        digest = download_file(f.url, target, sha256=f.sha256, size=f.size, progress=callback)
        report.files.append(
            {
                "name": f.name,
                "url": f.url,
                "sha256": digest,
                "bytes": target.stat().st_size,
                "verified": bool(f.sha256),
            }
        )
        if f.archive != "none":
            extracted += safe_extract(target, dest, kind=f.archive, members=f.members, strip=f.strip)
            target.unlink()  # the archive's sha256 stays in the marker
    report.extracted = len(extracted)
    if content_sha256 is not None:
        got = tree_digest(dest, extracted)
        if got != content_sha256:
            for p in extracted:
                p.unlink(missing_ok=True)
            raise ActrecError(
                f"{name}: the extracted files do not match the registry (content sha256 {got}, expected "
                f"{content_sha256}); they were deleted"
            )
    (dest / MARKER).write_text(
        json.dumps({"name": name, "files": report.files, "extracted": report.extracted}, indent=2) + "\n"
    )
    return report


def _marker_matches(marker: dict, files: tuple[RemoteFile, ...], dest: Path) -> bool:
    """The marker records these URLs (and checksums, where pinned) and the plain files are still there."""
    recorded = {row["name"]: row for row in marker.get("files", [])}
    for f in files:
        row = recorded.get(f.name)
        if row is None or row.get("url") != f.url or (f.sha256 and row.get("sha256") != f.sha256):
            return False
        if f.archive == "none" and not (dest / f.name).is_file():
            return False
    return True


def install_dataset(
    name: str,
    dest: Path | None = None,
    *,
    sha256: str | None = None,
    allow_unverified: bool = False,
    progress: Callable[[str, int, int | None], None] | None = None,
    force: bool = False,
) -> InstallReport:
    """Install a registry dataset into `dest` (default data/downloads/NAME). `sha256` pins the checksum of a
    one-file entry that has none in the registry."""
    entry = get_entry(name)
    files = entry.files
    if sha256 is not None:
        sha256 = _check_hex(sha256)
        if len(files) != 1:
            raise ActrecError(f"{name} has {len(files)} files: --sha256 applies to one-file datasets only")
        f = files[0]
        if f.sha256 and f.sha256 != sha256:
            raise ActrecError(f"{name}: --sha256 {sha256} differs from the registry's {f.sha256}")
        files = (RemoteFile(**{**asdict(f), "sha256": sha256}),)
    return install(
        files,
        Path(dest) if dest is not None else Path("data") / "downloads" / name,
        name=name,
        allow_unverified=allow_unverified,
        content_sha256=entry.content_sha256,
        progress=progress,
        force=force,
    )


def install_url(
    url: str,
    dest: Path | None = None,
    *,
    sha256: str | None,
    allow_unverified: bool = False,
    archive: str = "auto",
    members: tuple[str, ...] = (),
    strip: int = 0,
    progress: Callable[[str, int, int | None], None] | None = None,
    force: bool = False,
) -> InstallReport:
    """Download any URL into `dest` (default data/downloads/<file name without extension>) with a checksum
    (`sha256`), unpacking a zip/tar (archive="auto" guesses from the file name; "none" keeps the file as is)."""
    name = Path(urlparse(url).path).name or "download"
    if dest is None:
        dest = Path("data") / "downloads" / name.split(".", 1)[0]
    kind = guess_archive(name) if archive == "auto" else archive
    if kind not in ARCHIVES:
        raise ActrecError(f"--archive must be auto or one of {', '.join(ARCHIVES)}, not {archive!r}")
    remote = RemoteFile(url, name, _check_hex(sha256), None, archive=kind, members=members, strip=strip)
    return install(
        (remote,), Path(dest), name=url, allow_unverified=allow_unverified, progress=progress, force=force
    )
