"""Configure numba before anything imports it: a writable kernel cache and a fork- and thread-safe threading
layer.

Why: numba's default OpenMP layer kills forked children after a parallel kernel ran (DataLoader workers,
multiprocessing pools) and `cache=True` fails at import when the package folder is read-only. TBB is safe for
both forking and concurrent callers (dask threads); the `tbb` wheel puts libtbb.so.12 in `<prefix>/lib`, which
the dynamic loader does not search, so it is preloaded here by absolute path.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path


def _preload_tbb() -> bool:
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix)):
        lib = Path(prefix) / "lib" / "libtbb.so.12"
        if lib.exists():
            try:
                ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
                return True
            except OSError:
                return False
    return False


def configure() -> None:
    os.environ.setdefault("NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "actrec" / "numba"))
    if "NUMBA_THREADING_LAYER" not in os.environ:
        # "safe" = tbb; without tbb fall back to workqueue, which is fork-safe (callers must not run kernels
        # from several threads at once then; etl.heatmaps.clip serialises kernel calls in that case).
        os.environ["NUMBA_THREADING_LAYER"] = "tbb" if _preload_tbb() else "workqueue"
    elif os.environ["NUMBA_THREADING_LAYER"] in ("tbb", "safe"):
        _preload_tbb()


configure()
