"""Advisory locks between actrec processes, one lock file `<path>.lock` beside each store or run folder.

A writer (ingest, render, fit into a run folder) holds it exclusively; a reader (render reading its keypoint
store, fit and evaluate reading a heatmap store) holds it shared for as long as it reads. So a store is never
replaced while a reader uses it, and two writers never share an output. flock locks belong to the open file:
the kernel drops them when the process dies, so a SIGKILLed run never leaves a stale lock (only an unlocked
file, reused next time). Forked children (DataLoader workers) share their parent's lock.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

from etl.errors import ActrecError

LOCK_SUFFIX = ".lock"


def lock_path(target: Path) -> Path:
    target = Path(target)
    return target.with_name(target.name + LOCK_SUFFIX)


@contextmanager
def exclusive_lock(out: Path, what: str):
    """Hold an exclusive, non-blocking flock on `<out>.lock` (a sibling, so it outlives a temporary folder).
    Refused while another writer or any reader holds it. The file is removed on the way out, while still
    locked; a waiter that opened it before the removal sees that its file is gone and starts over."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    path = lock_path(out)
    fd = _lock_file(path, fcntl.LOCK_EX, lambda: _busy_message(path, out, what))
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


@contextmanager
def shared_lock(store: Path, what: str):
    """Hold a shared flock on `<store>.lock` while reading `store`: any number of readers, no writer. A store
    whose folder is read-only (a mounted dataset) cannot be written by actrec either: no lock is needed."""
    store = Path(store)
    path = lock_path(store)
    try:
        fd = _lock_file(
            path,
            fcntl.LOCK_SH,
            lambda: (
                f"{store} is being written right now (lock {path} is held): wait for that to finish "
                f"before the {what} reads it"
            ),
        )
    except PermissionError:
        yield
        return
    except OSError as exc:
        if exc.errno == 30:  # EROFS
            yield
            return
        raise
    try:
        yield
    finally:
        # The last one out removes the file (no lock files left beside stores): only if no one else holds it.
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path.unlink(missing_ok=True)
        except OSError:
            pass  # another reader still holds it: it stays
        os.close(fd)


def _busy_message(path: Path, out: Path, what: str) -> str:
    try:
        holder = path.read_text().strip()
    except OSError:
        holder = ""
    if holder:
        return (
            f"another {what} is writing {out} right now (lock {path} is held by pid {holder}); "
            "wait for it to finish or stop it first"
        )
    return (
        f"{out} is in use right now (lock {path} is held by a process reading it, e.g. a render or a fit): "
        f"wait for it to finish or stop it before the {what} writes {out}"
    )


def _lock_file(path: Path, mode: int, busy) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ActrecError(busy()) from None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # we locked a file its previous holder had just removed: take the new one
