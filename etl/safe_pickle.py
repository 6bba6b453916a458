"""Load pickles that may only hold numpy arrays and builtin containers (PYSKL annotations, DD-Net pickles).

A pickle can name any importable callable and make the loader call it (`os.system`, `subprocess.Popen`, ...).
`SafeUnpickler.find_class` is the one place where the pickle stream turns a name into a callable, so refusing
every name outside a short allow-list stops a malicious file before anything of it runs.
"""

from __future__ import annotations

import _codecs
import pickle
from pathlib import Path

import numpy as np

from etl.errors import ActrecError

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


class SafeUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only the allow-listed numpy/builtin names and refuses every other global."""

    def __init__(self, file, *, source: str = "<pickle>"):
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise ActrecError(
                f"{self.source}: refused to load the global {module}.{name}: this reader only accepts pickles "
                "of numpy arrays and plain lists/dicts (a pickle naming other code could run it)"
            ) from None


def load_pickle(path: Path) -> object:
    """Unpickle `path` with `SafeUnpickler`. Raises ActrecError for a refused global or a corrupt file."""
    try:
        with open(path, "rb") as f:
            return SafeUnpickler(f, source=str(path)).load()
    except ActrecError:
        raise
    except OSError as exc:
        raise ActrecError(f"{path}: cannot open: {exc.strerror or exc}") from None
    except Exception as exc:  # a corrupt stream can fail in any of pickle's opcodes
        raise ActrecError(
            f"{path}: not a readable pickle (truncated or corrupt): {type(exc).__name__}: {exc}"
        ) from None
