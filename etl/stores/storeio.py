"""What both stores share: opening with a kind/format_version check, a temporary folder that becomes the store by
one rename, and an exclusive lock so two writers never share a store."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from contextlib import contextmanager, suppress
from pathlib import Path

import zarr

from etl.common.errors import ActrecError

PARTIAL_SUFFIX = ".partial"
SEAL_KEY = "integrity"  # attrs entry: sha256 of every metadata file and of the other attrs


def partial_path(out: Path) -> Path:
    """Where a store is built before it becomes visible under its name (sibling, same file system)."""
    return out.with_name(out.name + PARTIAL_SUFFIX)


def open_group(path: str | Path, kind: str, format_version: int, remake: str = "") -> zarr.Group:
    """Open a finished store read-only after checking it is the expected kind and version, that it was
    finished, and that its metadata files and attrs are the ones it was sealed with (see `seal`)."""
    path = Path(path)
    if not path.exists():
        hint = (
            " (an interrupted run left a .partial folder: re-run it to finish)"
            if partial_path(path).exists()
            else ""
        )
        raise ActrecError(f"store {path} does not exist{hint}")
    try:
        group = zarr.open_group(str(path), mode="r")
        attrs = dict(group.attrs)
    except Exception as exc:
        raise ActrecError(f"{path / 'zarr.json'} is unreadable, {path} is not a zarr store: {exc}") from exc
    found_kind = attrs.get("kind")
    if found_kind != kind:
        found = found_kind or "foreign zarr"
        article = "an" if found[0].lower() in "aeiou" else "a"
        raise ActrecError(f"{path} is {article} {found} store, expected {kind}")
    version = attrs.get("format_version")
    if version != format_version:
        raise ActrecError(
            f"{path} has format_version {version}; this actrec reads version {format_version}. "
            f"{remake or 'Re-create the store'} with this version of actrec."
        )
    if attrs.get("complete") is not True:
        raise ActrecError(
            f"{path} is unfinished (attrs complete={attrs.get('complete')}): it is the temporary folder of an "
            f"interrupted run, not a store. {remake or 'Re-create the store'}."
        )
    problems = seal_problems(path, attrs)
    if problems:
        where, what = problems[0]
        raise ActrecError(f"{path / where}: {what}; the store is damaged. {remake or 'Re-create it'}.")
    return group


def store_stamp(path: Path) -> tuple:
    """A stamp of which store is at `path` right now (not what it holds: that is a training source's identity):
    the folder's inode and its zarr.json's (a rename or a rewrite changes them). One stat pair, cheap enough to
    check on every read."""
    try:
        d, z = os.stat(path), os.stat(Path(path) / "zarr.json")
    except OSError:
        return ()
    return (d.st_dev, d.st_ino, z.st_ino, z.st_mtime_ns, z.st_size)


def check_unchanged(path: Path, stamp: tuple, rewriter: str) -> None:
    """Raise if the store at `path` is no longer the one whose `store_stamp` was `stamp` (replaced or rewritten
    while it was being read, e.g. by `rewriter`): what was read must not be reported as the store's."""
    if store_stamp(path) != stamp:
        raise ActrecError(
            f"{path} was replaced or changed while it was being read ({rewriter}, dvc checkout, or a copy?): "
            "stop and start the command again"
        )


def replaced_error(path: Path, reader: str) -> ActrecError:
    """What a reader says when the store it opened is no longer the one at `path`: not damage, a new store."""
    return ActrecError(
        f"{path} was replaced since the {reader} opened it (a re-ingest/render --overwrite, dvc checkout, or a "
        "copy?): what it held no longer matches the files; re-open the store (run the command again)"
    )


# ---- sealing: every file except the bulk data chunks (which carry their own per-clip checksums) is recorded


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def attrs_digest(attrs: dict) -> str:
    """sha256 of the attrs other than the seal itself, canonical JSON."""
    rest = {k: v for k, v in attrs.items() if k != SEAL_KEY}
    return hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()


def _metadata_files(folder: Path, data_arrays: tuple[str, ...]) -> list[str]:
    """Store-relative paths of every file but the group's zarr.json and the data arrays' chunks."""
    out = []
    for f in sorted(folder.rglob("*")):
        if not f.is_file():
            continue
        rel = f.relative_to(folder).as_posix()
        if rel == "zarr.json" or any(rel.startswith(f"{a}/c/") for a in data_arrays):
            continue
        out.append(rel)
    return out


def seal(folder: Path, data_arrays: tuple[str, ...], extra_attrs: dict) -> None:
    """Finish a store: write `extra_attrs`, complete=True and the seal (sha256 of each metadata file and of
    the attrs). Called last, on the temporary folder, just before the rename that publishes it."""
    group = zarr.open_group(str(folder), mode="r+")
    attrs = {**dict(group.attrs), **extra_attrs, "complete": True}
    files = {rel: _sha256_file(folder / rel) for rel in _metadata_files(folder, data_arrays)}
    attrs[SEAL_KEY] = {"data_arrays": list(data_arrays), "files": files, "attrs": attrs_digest(attrs)}
    group.attrs.update(attrs)


def seal_problems(folder: Path, attrs: dict) -> list[tuple[str, str]]:
    """(file, what is wrong) for every sealed file that is missing, changed or unexpected, and for edited
    attrs. Empty for an intact store. Costs one read of the metadata files (small: tables, per-clip arrays)."""
    seal_ = attrs.get(SEAL_KEY)
    if not isinstance(seal_, dict) or not isinstance(seal_.get("files"), dict):
        return [("zarr.json", f"attrs[{SEAL_KEY!r}] is missing or malformed")]
    problems = []
    if attrs_digest(attrs) != seal_.get("attrs"):
        problems.append(("zarr.json", "the store's attrs were edited after it was written"))
    files: dict = seal_["files"]
    for rel, digest in files.items():
        f = folder / rel
        if not f.is_file():
            problems.append((rel, "file is missing"))
        elif _sha256_file(f) != digest:
            problems.append((rel, "file is damaged or was edited (sha256 differs from when it was written)"))
    for rel in _metadata_files(folder, tuple(seal_.get("data_arrays", ()))):
        if rel not in files:
            problems.append((rel, "unexpected file (not part of the store when it was written)"))
    return problems


# ---- a full disk: one line naming the path, never a traceback


def is_disk_full(exc: BaseException) -> bool:
    """True when `exc` or anything it was raised from is ENOSPC / EDQUOT."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def disk_full_error(path: Path, what: str) -> ActrecError:
    free = ""
    with suppress(OSError):
        free = f" ({shutil.disk_usage(Path(path).parent).free / 2**20:.1f} MiB free there)"
    return ActrecError(f"no space left on the device writing {path}{free}: {what}")


@contextmanager
def disk_errors(path: Path, what: str):
    """Turn a full disk anywhere inside into one ActrecError naming `path` and saying what was kept."""
    try:
        yield
    except ActrecError:
        raise
    except Exception as exc:
        if is_disk_full(exc):
            raise disk_full_error(path, what) from exc
        raise


def check_output(out: Path, *, overwrite: bool, hint: str = "") -> None:
    """Refuse to replace an existing store unless asked to."""
    if out.exists() and not out.is_dir():
        raise ActrecError(f"{out} exists and is not a folder")
    if out.exists() and not overwrite:
        raise ActrecError(f"{out} already exists: pass --overwrite to replace it{hint}")


def recover_publish(out: Path) -> None:
    """Undo a publish killed between its two renames: the previous store is still whole in `<out>.old`."""
    old = out.with_name(out.name + ".old")
    if old.exists() and not out.exists():
        os.replace(old, out)


def publish(tmp: Path, out: Path) -> None:
    """Make `tmp` the store at `out`: an old store is moved aside first and removed only after the rename."""
    old = out.with_name(out.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    if old.exists():
        shutil.rmtree(old)
