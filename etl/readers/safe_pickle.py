"""Load pickles that may only hold numpy arrays and builtin containers (PYSKL annotations, DD-Net pickles).

A pickle can name any importable callable and make the loader call it (`os.system`, `subprocess.Popen`, ...).
`SafeUnpickler.find_class` is the one place where the pickle stream turns a name into a callable, so refusing
every name outside a short allow-list stops a malicious file before anything of it runs.
"""

from __future__ import annotations

import _codecs
import math
import pickle
from pathlib import Path

import numpy as np

from etl.common.errors import ActrecError
from etl.pose.limits import DEFAULT_MAX_CLIP_BYTES

try:  # numpy >= 2 keeps the implementation in numpy._core; numpy 1.x in numpy.core
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray
    from numpy.core import numeric as _numeric

_NUMPY_GLOBALS = {
    "_reconstruct": _multiarray._reconstruct,  # ndarray.__reduce__ (protocols 0-4)
    "scalar": _multiarray.scalar,  # numpy scalars such as np.float64(1.5)
    "_frombuffer": _numeric._frombuffer,  # ndarray.__reduce_ex__ with protocol 5
}

# (module, name) -> object. Pickles written by numpy 1.x name numpy.core.*, by numpy 2.x numpy._core.*.
_ALLOWED: dict[tuple[str, str], object] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # protocol-2 pickles (mmcv's default, so most PYSKL files) store bytes as _codecs.encode(text, "latin1")
    ("_codecs", "encode"): _codecs.encode,
}
for _package in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_package}.multiarray", "_reconstruct")] = _NUMPY_GLOBALS["_reconstruct"]
    _ALLOWED[(f"{_package}.multiarray", "scalar")] = _NUMPY_GLOBALS["scalar"]
    _ALLOWED[(f"{_package}.numeric", "_frombuffer")] = _NUMPY_GLOBALS["_frombuffer"]

_CONTAINERS = {
    "list": list,
    "dict": dict,
    "tuple": tuple,
    "set": set,
    "frozenset": frozenset,
    "bytearray": bytearray,
    "bytes": bytes,  # protocol 2 writes b"" as bytes()
    "complex": complex,
}
for _module in ("builtins", "__builtin__"):  # __builtin__: protocol-2 pickles written by Python 2
    for _name, _obj in _CONTAINERS.items():
        _ALLOWED[(_module, _name)] = _obj
_ALLOWED[("collections", "OrderedDict")] = dict


# Allow-listed callables that allocate memory from a size written in the stream rather than from bytes the stream
# holds: `bytearray(10**12)` is a 32-byte pickle, `ndarray((10**5, 10**5))` an 87-byte one. Real pickles call
# them with data (bytearray(b"...")) or with an empty shape (_reconstruct(ndarray, (0,), b"b")).
_SIZED = {np.ndarray, _NUMPY_GLOBALS["_reconstruct"], bytearray, bytes}


class SafeUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only the allow-listed numpy/builtin names and refuses every other global.

    `max_bytes` bounds what the stream may make the loader allocate from declared sizes (summed over the file),
    checked before each such allocation."""

    def __init__(self, file, *, source: str = "<pickle>", max_bytes: int = DEFAULT_MAX_CLIP_BYTES):
        super().__init__(file)
        self.source = source
        self.max_bytes = max_bytes
        self.declared = 0  # bytes asked for so far by sized calls

    def find_class(self, module: str, name: str):
        try:
            found = _ALLOWED[(module, name)]
        except KeyError:
            raise ActrecError(
                f"{self.source}: refused to load the global {module}.{name}: this reader only accepts pickles "
                "of numpy arrays and plain lists/dicts (a pickle naming other code could run it)"
            ) from None
        if found is _codecs.encode:
            return self._latin1_encode
        if found in _SIZED:
            return self._bounded(found, f"{module}.{name}")
        return found

    _ndarray_stand_in = None  # the bounded np.ndarray: also appears as _reconstruct's class argument

    @staticmethod
    def _latin1_encode(text, encoding="utf-8", errors="strict"):
        # protocol 2 writes bytes as _codecs.encode(text, "latin1"); no other codec is needed
        if encoding not in ("latin1", "latin-1", "iso-8859-1") or not isinstance(text, str):
            raise ActrecError(f"refused _codecs.encode(..., {encoding!r}): only latin1 text is expected")
        return _codecs.encode(text, encoding, errors)

    def _bounded(self, fn, qualname: str):
        def call(*args, **kwargs):
            if args and args[0] is self._ndarray_stand_in and fn is not np.ndarray:
                args = (np.ndarray, *args[1:])  # _reconstruct(ndarray, shape, dtype) names the class itself
            nbytes = _declared_bytes(fn, args, kwargs)
            if nbytes > self.max_bytes - self.declared:
                raise ActrecError(
                    f"{self.source}: refused {qualname}(...) asking for {nbytes} bytes ({self.declared} asked "
                    f"before in this file): more than max_clip_bytes={self.max_bytes} (raise it with "
                    "--max-clip-bytes if the file is real)"
                )
            self.declared += nbytes
            return fn(*args, **kwargs)

        if fn is np.ndarray:
            if self._ndarray_stand_in is None:
                self._ndarray_stand_in = call
            return self._ndarray_stand_in
        return call


def _declared_bytes(fn, args: tuple, kwargs: dict) -> int:
    """Bytes `fn(*args)` allocates that do not come from data already in the stream (Python ints: no overflow).

    bytearray(n) / bytes(n): n; ndarray(shape, dtype, buffer=None): prod(shape) * itemsize unless it wraps a
    buffer; _reconstruct(cls, shape, dtype): prod(shape) * itemsize."""
    if fn in (bytearray, bytes):
        first = args[0] if args else kwargs.get("source", 0)
        return max(int(first), 0) if isinstance(first, int) else 0
    if fn is np.ndarray:
        shape = args[0] if args else kwargs.get("shape", ())
        dtype = args[1] if len(args) > 1 else kwargs.get("dtype", float)
        if (len(args) > 2 and args[2] is not None) or kwargs.get("buffer") is not None:
            return 0
    else:  # _reconstruct(subtype, shape, dtype)
        shape = args[1] if len(args) > 1 else 0
        dtype = args[2] if len(args) > 2 else "b"
    dims = shape if isinstance(shape, tuple | list) else (shape,)
    try:
        count = math.prod(max(int(d), 0) for d in dims)
        itemsize = np.dtype(dtype).itemsize
    except (TypeError, ValueError):
        return 0  # numpy refuses such arguments itself, before allocating
    return count * max(itemsize, 1)


def load_pickle(path: Path, *, max_bytes: int = DEFAULT_MAX_CLIP_BYTES) -> object:
    """Unpickle `path` with `SafeUnpickler`. Raises ActrecError for a refused global, a corrupt file, or
    declared allocations above `max_bytes` (see SafeUnpickler)."""
    try:
        with open(path, "rb") as f:
            return SafeUnpickler(f, source=str(path), max_bytes=max_bytes).load()
    except ActrecError:
        raise
    except OSError as exc:
        raise ActrecError(f"{path}: cannot open: {exc.strerror or exc}") from None
    except Exception as exc:  # a corrupt stream can fail in any of pickle's opcodes
        raise ActrecError(
            f"{path}: not a readable pickle (truncated or corrupt): {type(exc).__name__}: {exc}"
        ) from None
