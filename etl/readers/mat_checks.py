"""Sizes a MATLAB .mat file declares, checked before `scipy.io.loadmat` reads it: a compressed variable of zeros
is a zip bomb (a 3 MB file holding a (20000, 20000) double matrix asks for 3.2 GB)."""

from __future__ import annotations

from pathlib import Path

import scipy.io

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
