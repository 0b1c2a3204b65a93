"""Pickles of the original projects, read safely.

AttnGAN / OP-GAN / StackGAN ship pickles written by Python 2 (so they need
``encoding="latin1"``). Unpickling runs arbitrary code, so we allow only plain
containers, strings, numbers and NumPy arrays.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

from ..errors import GanstackError
from ..io import atomic_path

_ALLOWED = {
    ("builtins", "list"), ("builtins", "dict"), ("builtins", "tuple"), ("builtins", "set"),
    ("builtins", "frozenset"), ("builtins", "str"), ("builtins", "bytes"), ("builtins", "int"),
    ("builtins", "float"), ("builtins", "bool"), ("builtins", "complex"), ("builtins", "bytearray"),
    ("collections", "OrderedDict"), ("collections", "defaultdict"),
    ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"),
    ("__builtin__", "object"), ("builtins", "object"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}
# Python 2 names that pickle's fix_imports maps, kept for clarity of the allow-list.
_ALIASES = {("__builtin__", n): ("builtins", n) for _, n in list(_ALLOWED)}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        key = _ALIASES.get((module, name), (module, name))
        if key not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def load_pickle(path: str | os.PathLike) -> Any:
    """Load a pickle written by Python 2 or 3, allowing only plain data."""
    path = Path(path)
    if not path.is_file():
        raise GanstackError(f"{path}: file not found")
    try:
        with open(path, "rb") as f:
            return _RestrictedUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as e:
        raise GanstackError(f"{path}: not a readable data pickle ({e}); re-create it with `ganstack prepare`") from None


def dump_pickle(obj: Any, path: str | os.PathLike) -> None:
    """Write a pickle atomically with protocol 2, which Python 2 readers accept too."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            pickle.dump(obj, f, protocol=2)
