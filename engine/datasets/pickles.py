"""Unpickle CIFAR's python batches without letting a pickle call anything, or ask for memory it does not hold.

A pickle can name any importable callable (``os.system``…) and the standard unpickler calls it; CIFAR's batches
need only dicts, lists, bytes and numpy's array reconstruction, so only those globals resolve here — and each is
handed out as a fresh checked wrapper, never the real module object, so BUILD cannot modify anything that outlives
the load. A pickle of a few hundred bytes can also *declare* gigabytes (``bytearray(2**31)``, an array shape, a
memo index, a copy made a thousand times); so every allocation is checked against the bytes the pickle actually
holds before it is made: no single object larger than the pickle, all of them together at most twice its size.
Everything refused is a ``ValueError("pickle: …")`` from :func:`safe_unpickle`.
"""

from __future__ import annotations

import io
import math
import pickle
import struct

import numpy as np

#: At most this many opcodes per pickle: CIFAR-100's train file (the largest) has ~250,000.
MAX_PICKLE_OPCODES = 2_000_000
#: Objects built by calls may take at most 2x the pickle's size in all, plus this slack.
_SLACK = 1 << 20
#: Dtypes a CIFAR pickle may use: booleans, numbers, byte and text strings, raw bytes (no objects, no fields).
_PLAIN_KINDS = "biufcSUV"


def _np_core():
    return getattr(np, "_core", None) or np.core  # numpy >= 2 keeps the real module in numpy._core


class ForbiddenGlobal(pickle.UnpicklingError):
    """A pickle named a global outside the allowed set, used persistent ids, or tried to modify an object."""


class PickleTooLarge(pickle.UnpicklingError):
    """A pickle asked for more memory (or more work) than the bytes it holds can justify."""


class _Allowance:
    """The memory a pickle of ``size`` bytes may ask for: no object above ``size``, all together ``2*size + 1 MiB``."""

    def __init__(self, size: int):
        self.size = int(size)
        self.left = 2 * self.size + _SLACK

    def take(self, n: int, what: str) -> None:
        if n > self.size + 64:
            raise PickleTooLarge(
                f"asks for {what} of {n:,} bytes, but the pickle holds only {self.size:,} bytes; refusing to "
                f"allocate it (an object may not be larger than the pickle that holds it)"
            )
        if n > self.left:
            raise PickleTooLarge(
                f"asks for {what} of {n:,} bytes after {2 * self.size + _SLACK - self.left:,} already; refusing it "
                f"(objects built from a pickle of {self.size:,} bytes may take at most twice that in all)"
            )
        self.left -= n


def _shape(shape, what: str) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, tuple) or len(shape) > 32:
        raise ForbiddenGlobal(f"gives {what} a shape that is not a tuple of at most 32 sizes")
    if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and 0 <= d < 2**62 for d in shape):
        raise ForbiddenGlobal(f"gives {what} a shape with a size that is not an integer in [0, 2**62): {shape!r:.80}")
    return tuple(int(d) for d in shape)


def _plain_dtype(dtype, what: str) -> np.dtype:
    """A fresh canonical dtype equal to ``dtype``, which must be plain (no objects, fields or sub-arrays).

    The pickle may have given its dtype any state through BUILD; rebuilding it from its string drops all of it.
    """
    if not isinstance(dtype, np.dtype):
        try:
            dtype = _dtype_of(dtype)
        except (TypeError, ValueError):
            raise ForbiddenGlobal(f"gives {what} something that is not a dtype ({type(dtype).__name__})") from None
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in _PLAIN_KINDS:
        raise ForbiddenGlobal(f"gives {what} the dtype {dtype!r:.60}; only plain number, string and byte dtypes are allowed")
    return np.dtype(dtype.str)


def _dtype_of(spec) -> np.dtype:
    if isinstance(spec, bytes):
        spec = spec.decode("latin1")
    if not isinstance(spec, str) or len(spec) > 24:
        raise TypeError("not a dtype string")
    return np.dtype(spec)


def _nbytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    return math.prod(shape) * dtype.itemsize


class _CheckedArray(np.ndarray):
    """The arrays a pickle builds: their ``__setstate__`` checks the declared shape against the bytes given.

    (numpy's own allocates the declared shape first for some dtypes, and uses the pickle's dtype object as is.)
    """

    def __setstate__(self, state):
        allowance = self.__dict__.get("_allowance")
        if allowance is None or not isinstance(state, tuple) or len(state) not in (4, 5):
            raise ForbiddenGlobal("gives an array a state that is not (version, shape, dtype, fortran, data)")
        shape, dtype, fortran, raw = state[-4:]
        shape = _shape(shape, "an array")
        dtype = _plain_dtype(dtype, "an array")
        if isinstance(raw, str):
            allowance.take(len(raw), "array data")
            raw = raw.encode("latin1")
        if not isinstance(raw, (bytes, bytearray)):
            raise ForbiddenGlobal(f"gives an array data of type {type(raw).__name__}; only bytes are allowed")
        n = _nbytes(shape, dtype)
        if n != len(raw):
            raise PickleTooLarge(f"declares an array {shape} of {dtype} ({n:,} bytes) but holds {len(raw):,} bytes")
        allowance.take(n, "an array")
        super().__setstate__((1, shape, dtype, bool(fortran), raw if isinstance(raw, bytes) else bytes(raw)))


# The callables a pickle may reach. Each takes the load's allowance first; none returns a module-level object.


def _ndarray_token(allowance, *args):
    raise ForbiddenGlobal("calls numpy.ndarray(...) directly, which is not allowed (arrays come from _reconstruct)")


def _reconstruct(allowance, subtype, shape, dtype):
    if not (isinstance(subtype, _Global) and subtype._impl is _ndarray_token):
        raise ForbiddenGlobal("calls numpy's _reconstruct with a type other than numpy.ndarray")
    shape = _shape(shape, "_reconstruct")
    dtype = _plain_dtype(dtype, "_reconstruct")
    allowance.take(_nbytes(shape, dtype), "an array")
    arr = _CheckedArray(shape, dtype)
    arr.__dict__["_allowance"] = allowance
    return arr


def _frombuffer(allowance, buf, dtype, shape, order, *axis_order):
    if not isinstance(buf, (bytes, bytearray)):
        raise ForbiddenGlobal(f"gives numpy's _frombuffer a {type(buf).__name__}; only bytes are allowed")
    dtype = _plain_dtype(dtype, "_frombuffer")
    shape = _shape(shape, "_frombuffer")
    if _nbytes(shape, dtype) != len(buf):
        raise PickleTooLarge(f"declares an array {shape} of {dtype} but holds {len(buf):,} bytes")
    if order not in ("C", "F", "K", "A") or len(axis_order) > 1:
        raise ForbiddenGlobal("gives numpy's _frombuffer an unknown memory order")
    return _np_core().numeric._frombuffer(buf, dtype, shape, order, *axis_order)


def _scalar(allowance, dtype, data=None):
    dtype = _plain_dtype(dtype, "a numpy scalar")
    if isinstance(data, str):
        data = data.encode("latin1")
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise PickleTooLarge(f"declares a numpy scalar of {dtype.itemsize:,} bytes without holding them")
    allowance.take(len(data), "a numpy scalar")
    return _np_core().multiarray.scalar(dtype, data)


def _dtype(allowance, spec, align=False, copy=True):
    try:
        return np.dtype(_dtype_of(spec), align=bool(align), copy=True)  # always a fresh object BUILD may modify
    except (TypeError, ValueError):
        raise ForbiddenGlobal(f"asks for the dtype {spec!r:.40}, which is not allowed") from None


def _encode(allowance, text, encoding="latin1"):
    """``_codecs.encode`` as Python 3 pickles of ``bytes`` use it — limited to the latin-1 case."""
    if not isinstance(text, str) or str(encoding).lower().replace("_", "-") not in ("latin1", "latin-1"):
        raise ForbiddenGlobal("calls _codecs.encode other than as encode(str, 'latin1'), which is not allowed")
    allowance.take(len(text), "a byte string")
    return text.encode("latin1")


def _byte_string(kind):
    def make(allowance, source=b"", encoding=None):
        if isinstance(source, str):
            return kind(_encode(allowance, source, encoding or "latin1"))
        if isinstance(source, (int, np.integer)) and not isinstance(source, bool) and source >= 0:
            allowance.take(int(source), f"a {kind.__name__}")
            return kind(int(source))
        if not isinstance(source, (bytes, bytearray, list, tuple)):
            raise ForbiddenGlobal(f"calls {kind.__name__}({type(source).__name__}), which is not allowed")
        allowance.take(len(source), f"a {kind.__name__}")
        return kind(source)

    return make


def _container(kind):
    def make(allowance, items=()):
        if not isinstance(items, (list, tuple, set, frozenset, dict, bytes, str)):
            raise ForbiddenGlobal(f"calls {kind.__name__}({type(items).__name__}), which is not allowed")
        return kind(items)

    return make


_ALLOWED = {
    ("numpy", "ndarray"): _ndarray_token,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _encode,
    ("collections", "OrderedDict"): _container(dict),
}
for _mod in ("builtins", "__builtin__"):
    _ALLOWED.update({(_mod, "set"): _container(set), (_mod, "frozenset"): _container(frozenset),
                     (_mod, "bytearray"): _byte_string(bytearray), (_mod, "bytes"): _byte_string(bytes)})
for _mod in ("numpy.core", "numpy._core"):
    _ALLOWED.update({(f"{_mod}.multiarray", "_reconstruct"): _reconstruct,
                     (f"{_mod}.multiarray", "scalar"): _scalar, (f"{_mod}.numeric", "_frombuffer"): _frombuffer})


class _Global:
    """What ``find_class`` hands out: a fresh, checked stand-in for an allowed global.

    It has no attributes a pickle could set (``__slots__``) and refuses BUILD, so a pickle can change nothing but
    this throw-away object, never a function or class that outlives the load.
    """

    __slots__ = ("_impl", "_allowance", "_name")

    def __init__(self, impl, allowance: _Allowance, name: str):
        self._impl, self._allowance, self._name = impl, allowance, name

    def __call__(self, *args):
        return self._impl(self._allowance, *args)

    def __setstate__(self, state):
        raise ForbiddenGlobal(f"modifies {self._name} (BUILD on a global), which is not allowed")

    def __repr__(self) -> str:
        return f"<checked {self._name}>"


def _counted(op):
    def run(self):
        self._ops += 1
        if self._ops > MAX_PICKLE_OPCODES:
            raise PickleTooLarge(f"has more than {MAX_PICKLE_OPCODES:,} opcodes; a dataset pickle needs far fewer")
        op(self)

    return run


class RestrictedUnpickler(pickle._Unpickler):
    """Unpickles only plain containers, numbers, strings, bytes and numpy arrays; anything else is refused.

    Built on the pure-Python unpickler so each opcode can be checked: the C one pre-allocates a memo table as
    large as the largest memo index a pickle names (a 9-byte pickle took 4 GB). ``size`` is the pickle's length,
    which bounds every allocation (see :class:`_Allowance`). BUILD may only give state to the arrays and dtypes
    this load made; APPEND/SETITEM/ADDITEMS only fill plain lists, dicts and sets; NEWOBJ/OBJ/INST are refused.
    """

    dispatch = {code: _counted(op) for code, op in pickle._Unpickler.dispatch.items()}

    def __init__(self, file, size: int, **kwargs):
        super().__init__(file, **kwargs)
        self._allowance = _Allowance(size)
        self._ops = 0
        self._made: dict[int, object] = {}  # dtypes this load made (kept alive so ids stay unique)

    def find_class(self, module: str, name: str):
        impl = _ALLOWED.get((module, name))
        if impl is None:
            raise ForbiddenGlobal(
                f"refers to {module}.{name}, which is not allowed (only plain containers, numbers, strings, bytes "
                f"and numpy arrays are accepted)"
            )
        if impl is _dtype:
            return _Global(self._make_dtype, self._allowance, f"{module}.{name}")
        return _Global(impl, self._allowance, f"{module}.{name}")

    def _make_dtype(self, allowance, *args):
        dt = _dtype(allowance, *args)
        self._made[id(dt)] = dt
        return dt

    def persistent_load(self, pid):
        raise ForbiddenGlobal("uses persistent ids, which are not allowed")

    def _load_build(self):
        inst = self.stack[-2]  # the state is on top
        if type(inst) is _CheckedArray or isinstance(inst, _Global) or self._made.get(id(inst)) is inst:
            return pickle._Unpickler.load_build(self)
        raise ForbiddenGlobal(f"gives state to a {type(inst).__name__} (BUILD), which is not allowed")

    def _load_bytearray8(self):
        (n,) = struct.unpack("<Q", self.read(8))
        self._allowance.take(n, "a bytearray")  # the pure-Python unpickler allocates n bytes before reading
        b = bytearray(n)
        if self.readinto(b) != n:
            raise pickle.UnpicklingError("pickle data was truncated")
        self.append(b)


def _only(kind: type, op, marked: bool, below: int = 0):
    """``op`` (APPEND, SETITEM, ADDITEMS…) only on a plain ``kind``: never calls a method of another object."""

    def run(self):
        target = self.metastack[-1][-1] if marked else self.stack[-1 - below]
        if type(target) is not kind:
            raise ForbiddenGlobal(f"fills a {type(target).__name__} like a {kind.__name__}, which is not allowed")
        op(self)

    return run


def _refuse(self):
    raise ForbiddenGlobal("builds an object with NEWOBJ/OBJ/INST, which is not allowed")


_U = pickle._Unpickler
RestrictedUnpickler.dispatch.update({code[0]: _counted(op) for code, op in {
    pickle.BUILD: RestrictedUnpickler._load_build,
    pickle.BYTEARRAY8: RestrictedUnpickler._load_bytearray8,
    pickle.APPEND: _only(list, _U.load_append, False, 1),
    pickle.APPENDS: _only(list, _U.load_appends, True),
    pickle.SETITEM: _only(dict, _U.load_setitem, False, 2),
    pickle.SETITEMS: _only(dict, _U.load_setitems, True),
    pickle.ADDITEMS: _only(set, _U.load_additems, True),
    pickle.NEWOBJ: _refuse, pickle.NEWOBJ_EX: _refuse, pickle.OBJ: _refuse, pickle.INST: _refuse,
}.items()})


def safe_unpickle(data: bytes, what: str = "pickle") -> object:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`; any failure is a ``ValueError`` naming ``what``."""
    try:
        obj = RestrictedUnpickler(io.BytesIO(data), len(data), encoding="bytes").load()
    except (ForbiddenGlobal, PickleTooLarge) as exc:
        raise ValueError(f"pickle: {what} {exc}") from None
    except MemoryError:
        raise ValueError(f"pickle: {what} needs more memory than this machine has; refusing it") from None
    except Exception as exc:  # truncated or garbage data raises many kinds of errors
        raise ValueError(f"pickle: {what} is not a readable pickle ({type(exc).__name__}: {exc})") from None
    return _plain_arrays(obj)


def _plain_arrays(obj):
    """Swap the load's checked arrays for plain ndarray views, at the top and inside dicts and lists (in place)."""
    if type(obj) is _CheckedArray:
        return obj.view(np.ndarray)
    seen, todo = set(), [obj]
    while todo:
        box = todo.pop()
        if id(box) in seen:
            continue
        seen.add(id(box))
        pairs = box.items() if type(box) is dict else enumerate(box) if type(box) is list else ()
        for key, value in list(pairs):
            if type(value) is _CheckedArray:
                box[key] = value.view(np.ndarray)
            elif type(value) in (dict, list):
                todo.append(value)
    return obj


def _plain_keys(obj):
    if isinstance(obj, dict):
        return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}
    return obj


def _names(values, max_len: int = 200) -> list[str] | None:
    """Class names as text, or None when one is not a short string (never decode a huge shared string N times)."""
    if not all(isinstance(v, (bytes, str)) and len(v) <= max_len for v in values):
        return None
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in values]
