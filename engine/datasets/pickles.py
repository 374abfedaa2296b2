"""Unpickle CIFAR's python batches without letting a pickle call anything.

A pickle can name any importable callable (``os.system``…) and the standard unpickler calls it; CIFAR's batches
need only dicts, lists, bytes and numpy's array reconstruction, so only those globals resolve here.
"""

from __future__ import annotations

import io
import pickle

import numpy as np


def _np_core():
    return getattr(np, "_core", None) or np.core  # numpy >= 2 keeps the real module in numpy._core


def _latin1_encode(text, encoding="latin1"):
    """``_codecs.encode`` as Python 3 pickles of ``bytes`` use it — limited to the latin-1 case."""
    if not isinstance(text, str) or str(encoding).lower().replace("_", "-") not in ("latin1", "latin-1"):
        raise ForbiddenGlobal("calls _codecs.encode other than as encode(str, 'latin1'), which is not allowed")
    return text.encode("latin1")


def _allowed_globals() -> dict[tuple[str, str], object]:
    core = _np_core()
    allowed = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "bytearray"): bytearray,
        ("__builtin__", "set"): set,
        ("__builtin__", "frozenset"): frozenset,
        ("__builtin__", "bytearray"): bytearray,
        ("collections", "OrderedDict"): dict,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = core.multiarray._reconstruct
        allowed[(mod, "scalar")] = core.multiarray.scalar
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        if hasattr(core.numeric, "_frombuffer"):
            allowed[(mod, "_frombuffer")] = core.numeric._frombuffer
    return allowed


class ForbiddenGlobal(pickle.UnpicklingError):
    """A pickle named a global outside the allowed set (or used persistent ids)."""


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles only plain containers, numbers, strings, bytes and numpy arrays; anything else is refused.

    A pickle can name any importable callable (``os.system``…) and the standard unpickler will call it. CIFAR's
    python batches only need dicts, lists, bytes and numpy's array reconstruction helpers, so those are the
    only globals this unpickler resolves.
    """

    _ALLOWED: dict[tuple[str, str], object] | None = None

    def find_class(self, module: str, name: str):
        allowed = type(self)._ALLOWED
        if allowed is None:
            allowed = type(self)._ALLOWED = _allowed_globals()
        try:
            return allowed[(module, name)]
        except KeyError:
            raise ForbiddenGlobal(
                f"refers to {module}.{name}, which is not allowed (only plain containers, numbers, strings, bytes "
                f"and numpy arrays are accepted)"
            ) from None

    def persistent_load(self, pid):
        raise ForbiddenGlobal("uses persistent ids, which are not allowed")


def safe_unpickle(data: bytes, what: str = "pickle") -> object:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`; any failure is a ``ValueError`` naming ``what``."""
    try:
        obj = RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except ForbiddenGlobal as exc:
        raise ValueError(f"pickle: {what} {exc}") from None
    except Exception as exc:  # truncated or garbage data raises many kinds of errors
        raise ValueError(f"pickle: {what} is not a readable pickle ({type(exc).__name__}: {exc})") from None
    return obj


def _plain_keys(obj):
    if isinstance(obj, dict):
        return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}
    return obj


def _names(values) -> list[str]:
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]
