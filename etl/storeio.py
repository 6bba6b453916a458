"""What both stores share: opening with a kind/format_version check, a temporary folder that becomes the store by
one rename, and an exclusive lock so two writers never share a store."""

from __future__ import annotations

import fcntl
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import zarr

from etl.errors import ActrecError

PARTIAL_SUFFIX = ".partial"
LOCK_SUFFIX = ".lock"


def partial_path(out: Path) -> Path:
    """Where a store is built before it becomes visible under its name (sibling, same file system)."""
    return out.with_name(out.name + PARTIAL_SUFFIX)


def open_group(path: str | Path, kind: str, format_version: int) -> zarr.Group:
    """Open a finished store read-only after checking it is the expected kind and version."""
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
    except Exception as exc:
        raise ActrecError(f"{path} is not a zarr store: {exc}") from exc
    found_kind = group.attrs.get("kind")
    if found_kind != kind:
        raise ActrecError(f"{path} is a {found_kind or 'foreign zarr'} store, expected {kind}")
    version = group.attrs.get("format_version")
    if version != format_version:
        raise ActrecError(
            f"{path} has format_version {version}; this actrec reads version {format_version}. "
            "Re-create the store with this version of actrec."
        )
    return group


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


def lock_path(out: Path) -> Path:
    return out.with_name(out.name + LOCK_SUFFIX)


@contextmanager
def exclusive_lock(out: Path, what: str):
    """Hold an exclusive, non-blocking flock on `<out>.lock` (a sibling, so it outlives the temporary folder).
    The kernel drops the lock when the process dies, so a SIGKILLed run never leaves a stale lock (only an
    unlocked file, reused next time). The file is removed on the way out, while still locked; a waiter that
    opened it before the removal sees that its file is gone and starts over."""
    out.parent.mkdir(parents=True, exist_ok=True)
    path = lock_path(out)
    fd = _lock_file(path, out, what)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


def _lock_file(path: Path, out: Path, what: str) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ActrecError(
                f"another {what} is writing {out} right now (lock {path} is held); "
                "wait for it to finish or stop it first"
            ) from None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # we locked a file its previous holder had just removed: take the new one
