"""Loading a MATLAB .mat file safely: the sizes it declares are checked before `scipy.io.loadmat` reads it (a
compressed variable of zeros is a zip bomb: a 3 MB file holding a (20000, 20000) double matrix asks for 3.2 GB)."""

from __future__ import annotations

from pathlib import Path

import scipy.io

from etl.pose.limits import LimitError
from etl.readers.common import ClipError, describe_error

# the numpy dtype scipy loads each MATLAB class as (cells and structs: object references, 8 bytes each)
_DTYPE = {
    "double": "f8",
    "single": "f4",
    "int8": "i1",
    "uint8": "u1",
    "int16": "i2",
    "uint16": "u2",
    "int32": "i4",
    "uint32": "u4",
    "int64": "i8",
    "uint64": "u8",
    "logical": "u1",
    "char": "U1",
}


def check_mat_sizes(path: Path, check_array_size) -> None:
    """Raise LimitError when a top-level variable declares more than the limit allows.

    check_array_size(shape, dtype, what): the reader's limit check (ReadOptions.check_array_size). A file whose
    header cannot be read is left to loadmat, which names the damage."""
    try:
        variables = scipy.io.whosmat(path)
    except Exception:
        return
    for name, shape, matlab_class in variables:
        dtype = _DTYPE.get(matlab_class, "O")
        check_array_size(tuple(shape), dtype, f"variable {name!r} ({matlab_class})")


def load_mat(path: Path, check_array_size) -> dict:
    """The variables of a .mat file; ClipError (the file's reject reason) when it declares more than the limit
    allows or scipy cannot read it. check_array_size: as for `check_mat_sizes`."""
    try:
        check_mat_sizes(path, check_array_size)  # before loadmat allocates
    except LimitError as exc:
        raise ClipError(str(exc)) from None
    try:
        return scipy.io.loadmat(path)
    except Exception as exc:  # scipy raises ValueError, TypeError, OSError... for damaged files
        raise ClipError(
            f"not a readable MATLAB .mat file (corrupt or truncated?): {describe_error(exc)}"
        ) from None


def mat_names(path: Path) -> set[str]:
    """The variable names of a .mat file, read from its headers (empty when it is no readable .mat)."""
    try:
        return {name for name, _, _ in scipy.io.whosmat(path)}
    except Exception:
        return set()
