"""Advisory locks between actrec processes, one lock file `<path>.lock` beside each store or run folder.

A writer (ingest, render, fit into a run folder) holds it exclusively; a reader (render reading its keypoint
store, fit and evaluate reading a heatmap store) holds it shared for as long as it reads. So a store is never
replaced while a reader uses it, and two writers never share an output. flock locks belong to the open file:
the kernel drops them when the process dies, so a SIGKILLed run never leaves a stale lock (only an unlocked
file, reused next time).

Locks are keyed on the store's resolved real path: a store read through a symlink (or `..`, or a relative path)
and written under its real name take the same lock file, beside the real folder.

A forked child (a DataLoader worker) would share its parent's lock through the inherited descriptor and keep it
after a SIGKILL of the parent until it notices (seconds), so a resume right after a crash would be refused: every
lock descriptor is closed in the child right after fork (the parent still holds the lock, which belongs to the
open file and is released only when its last descriptor closes). Spawned children never inherit it (O_CLOEXEC).
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager, suppress
from pathlib import Path

from etl.common.errors import ActrecError

LOCK_SUFFIX = ".lock"
_held: set[int] = set()  # lock descriptors this process holds; closed in forked children (see the docstring)


def _drop_inherited_locks() -> None:
    for fd in _held:
        with suppress(OSError):
            os.close(fd)
    _held.clear()


os.register_at_fork(after_in_child=_drop_inherited_locks)


def lock_path(target: Path) -> Path:
    """`<real path of target>.lock`: the same file whatever spelling (symlink, relative, `..`) names the store."""
    target = Path(target).resolve()
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
    owner = os.getpid()
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{owner}\n".encode())
        yield
    finally:
        if os.getpid() == owner:  # a forked child unwinding here holds nothing: the lock is the parent's
            path.unlink(missing_ok=True)
            _release(fd)


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
    owner = os.getpid()
    try:
        yield
    finally:
        if os.getpid() == owner:  # a forked child unwinding here holds nothing: the lock is the parent's
            # The last one out removes the file (no lock files left beside stores): only if no one else holds it.
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                path.unlink(missing_ok=True)
            except OSError:
                pass  # another reader still holds it: it stays
            _release(fd)


def _release(fd: int) -> None:
    _held.discard(fd)
    os.close(fd)


def _busy_message(path: Path, out: Path, what: str) -> str:
    try:
        holder = path.read_text().strip()
    except OSError:
        holder = ""
    if holder and _alive(holder):
        return (
            f"another {what} is writing {out} right now (lock {path} is held by pid {holder}); "
            "wait for it to finish or stop it first"
        )
    return (
        f"{out} is in use right now (lock {path} is held by a process reading it, e.g. a render or a fit, "
        f"or left behind by one; `fuser {path}` names it): wait for it to finish or stop it before the {what} "
        f"writes {out}"
    )


def _alive(pid: str) -> bool:
    """Whether process `pid` still runs: a refusal names a live process only (never a crashed writer's pid)."""
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True  # someone else's process
    return True


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
                _held.add(fd)
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # we locked a file its previous holder had just removed: take the new one
