"""Hostile dataset uploads (issue 12, items 1-4): tiny files that declare gigabytes are refused by name.

Each case is a few hundred bytes to a few megabytes that, before the fix, made the loader allocate gigabytes or
decompress for seconds to minutes. The memory cases run in one child process under ``RLIMIT_AS`` (1.5 GiB above
what the child uses once its imports are done), so a regression shows as a MemoryError, not a dead machine; each
must end in its own named ``ValueError``. The rest run here, where they cost nothing after the fix.
"""

from __future__ import annotations

import functools
import gzip
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from engine.datasets import ImageDataset, load_upload, safe_unpickle

ROOT = Path(__file__).resolve().parents[3]
P2 = b"\x80\x02"


# ----------------------------------------------------------------------------------------------------------------
# crafting hostile files
# ----------------------------------------------------------------------------------------------------------------


def _long(n: int) -> bytes:
    b = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(b)]) + b


def _uni(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def _batch(data_op: bytes, labels_op: bytes = b"]") -> bytes:
    """A CIFAR batch {b'data': <data_op>, b'labels': <labels_op>} written opcode by opcode."""
    return P2 + b"}(C\x04data" + data_op + b"C\x06labels" + labels_op + b"u."


_RECONSTRUCT = b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"


def _dtype_op(spec: str) -> bytes:
    return b"cnumpy\ndtype\n" + _uni(spec) + b"\x89\x88\x87R"


def _array_op(arr: np.ndarray) -> bytes:
    return pickle.dumps(arr, protocol=2)[2:-1]


def _nested(k: int, depth: int) -> tuple[bytes, bytes]:
    """Opcodes building [[...[0]*k...]*k]*k from memo references (k**depth elements), and a reference to it."""
    out = b"(" + b"K\x00" * k + b"lq" + bytes([200])
    for level in range(1, depth):
        out += b"0(" + (b"h" + bytes([200 + level - 1])) * k + b"lq" + bytes([200 + level])
    return out + b"0", b"h" + bytes([200 + depth - 1])


def _repeat(call: bytes, arg: bytes, times: int) -> bytes:
    """A batch whose data is a list of ``call(arg)`` made ``times`` times on one memoised ``arg``."""
    return P2 + call + b"q\xc90" + arg + b"q\xca0" + b"}(C\x04data(" + b"h\xc9h\xcaR" * times + b"lC\x06labels]u."


def _tar(files: dict[str, bytes], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _cifar_tar(batch: bytes) -> bytes:
    ok = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}, protocol=2)
    files = {f"cifar-10-batches-py/data_batch_{i}": ok for i in range(2, 6)}
    files["cifar-10-batches-py/test_batch"] = ok
    files["cifar-10-batches-py/data_batch_1"] = batch
    return _tar(files)


def _npz(compressed: bool = False, **arrays) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def _idx(arr: np.ndarray, code: int) -> bytes:
    return bytes([0, 0, code, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape) + arr.tobytes()


def _mnist_zip(labels: np.ndarray, code: int) -> bytes:
    imgs = np.zeros((len(labels), 6, 6), np.uint8)
    return _zip({
        "train-images-idx3-ubyte": _idx(imgs, 0x08), "train-labels-idx1-ubyte": _idx(labels, code),
        "t10k-images-idx3-ubyte": _idx(imgs[:2], 0x08), "t10k-labels-idx1-ubyte": _idx(np.array([0, 1], np.uint8), 8),
    })


@functools.lru_cache(maxsize=8)
def _png(size: tuple[int, int], mode: str = "L", fmt: str = "PNG") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, size).save(buf, fmt)
    return buf.getvalue()


def _png_declaring(side: int) -> bytes:
    """An 8x8 PNG whose IHDR is rewritten to declare side x side pixels."""
    one = _png((8, 8))
    at = one.index(b"IHDR")
    ihdr = b"IHDR" + struct.pack(">II", side, side) + one[at + 12:at + 17]
    return one[:at] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + one[at + 21:]


_GZ_MB = gzip.compress(bytes(1 << 20), 9)  # one gzip member of 1 MiB of zeros, about 1 KB
_CORRUPT = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + b"\xff" * 64  # a gzip member with broken deflate data


def _gz_tar(headers_and_mb: list[tuple[tarfile.TarInfo, int]], tail: bytes = b"") -> bytes:
    """A .tar.gz as concatenated gzip members: each header, then ``mb`` MiB of zeros (sizes are multiples of 512)."""
    out = []
    for info, mb in headers_and_mb:
        out.append(gzip.compress(info.tobuf(tarfile.GNU_FORMAT), 1))
        out.append(_GZ_MB * mb)
    return b"".join(out) + tail


def _info(name: str, size: int, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.type = size, kind
    return info


# ----------------------------------------------------------------------------------------------------------------
# the memory cases: (make -> (bytes, filename, load_upload kwargs), the named error expected, or None to load)
# ----------------------------------------------------------------------------------------------------------------

_PICKLE = r"^pickle: 'cifar-10-batches-py/data_batch_1' "

MEMORY_CASES = {
    "bytearray(2**31)": (
        lambda: (_cifar_tar(_batch(b"c__builtin__\nbytearray\n" + _long(2**31) + b"\x85R")), "c.tar.gz", {}),
        _PICKLE + r"asks for a bytearray of 2,147,483,648 bytes, but the pickle holds only \d+ bytes"),
    "BYTEARRAY8 declaring 2**31": (
        lambda: (_cifar_tar(_batch(b"\x96" + struct.pack("<Q", 2**31))), "c.tar.gz", {}),
        _PICKLE + r"asks for a bytearray of 2,147,483,648 bytes"),
    "numpy.ndarray((2**33,))": (
        lambda: (_cifar_tar(_batch(b"cnumpy\nndarray\n" + _long(2**33) + b"\x85\x85R")), "c.tar.gz", {}),
        _PICKLE + r"calls numpy\.ndarray\(\.\.\.\) directly, which is not allowed"),
    "_reconstruct shape (2**33,)": (
        lambda: (_cifar_tar(_batch(_RECONSTRUCT + _long(2**33) + b"\x85C\x01b\x87R")), "c.tar.gz", {}),
        _PICKLE + r"asks for an array of 8,589,934,592 bytes"),
    "_reconstruct 3 x dtype V2**30": (
        lambda: (_cifar_tar(_batch(_RECONSTRUCT + b"K\x03\x85" + _dtype_op(f"V{2**30}") + b"\x87R")), "c.tar.gz", {}),
        _PICKLE + r"asks for an array of 3,221,225,472 bytes"),
    "__setstate__ object array of 2**31": (
        lambda: (_cifar_tar(_batch(_RECONSTRUCT + b"K\x00\x85C\x01b\x87R(K\x01" + _long(2**31) + b"\x85"
                                   + _dtype_op("O") + b"\x89]tb")), "c.tar.gz", {}),
        _PICKLE + r"gives an array the dtype dtype\('O'\); only plain number, string and byte dtypes are allowed"),
    "memo index 2**27 (C unpickler's table)": (
        lambda: (_cifar_tar(_batch(_array_op(np.zeros((2, 3072), np.uint8)), b"(K\x00K\x01lr\x00\x00\x00\x08")),
                 "c.tar.gz", {}),
        None),
    "_codecs.encode of one 1 MB str, 3000 times": (
        lambda: (_cifar_tar(_repeat(b"c_codecs\nencode\n", b"(" + _uni("a" * 10**6) + _uni("latin1") + b"t", 3000)),
                 "c.tar.gz", {}),
        _PICKLE + r"asks for a byte string of 1,000,000 bytes after [\d,]+ already; .* at most twice that in all"),
    "bytearray of one 1 MB bytes, 3000 times": (
        lambda: (_cifar_tar(_repeat(b"c__builtin__\nbytearray\n", b"B" + struct.pack("<I", 10**6) + bytes(10**6)
                                    + b"\x85", 3000)), "c.tar.gz", {}),
        _PICKLE + r"asks for a bytearray of 1,000,000 bytes after [\d,]+ already"),
    "data = nested shared lists (10**9 items)": (
        lambda: (_cifar_tar(P2 + _nested(1000, 3)[0] + b"}(C\x04data" + _nested(1000, 3)[1] + b"C\x06labels]u."),
                 "c.tar.gz", {}),
        r"^cifar: 'cifar-10-batches-py/data_batch_1' data must be a numpy array of \(N, 3072\) bytes, got list"),
    "labels = nested shared lists (10**9 items)": (
        lambda: (_cifar_tar(P2 + _nested(1000, 3)[0] + b"}(C\x04data" + _array_op(np.zeros((1, 3072), np.uint8))
                            + b"C\x06labels" + _nested(1000, 3)[1] + b"u."), "c.tar.gz", {}),
        r"^cifar: 'cifar-10-batches-py/data_batch_1' labels: labels must be a flat list of integer class indices"),
    "npz label 2**40": (
        lambda: (_npz(x=np.zeros((4, 8, 8), np.uint8), y=np.array([0, 1, 0, 2**40])), "y.npz", {}),
        r"^npz: y: labels must be class indices in \[0, 999\] \(at most 1000 classes\), got \[0, 1099511627776\]"),
    "npz float label 2.0**40": (
        lambda: (_npz(x=np.zeros((4, 8, 8), np.uint8), y=np.array([0.0, 1.0, 0.0, 2.0**40])), "y.npz", {}),
        r"^npz: y: labels must be class indices in \[0, 999\]"),
    "npz with 5,000,000 class names": (
        lambda: (_npz(True, x_train=np.zeros((4, 8, 8), np.uint8), y_train=np.array([0, 1, 0, 1]),
                      x_test=np.zeros((2, 8, 8), np.uint8), y_test=np.array([0, 1]), classes=np.zeros(5_000_000, "U1")),
                 "c.npz", {}),
        r"^npz: classes must be a 1-D array of at most 1000 names, got shape \(5000000,\)"),
    "npz .npy header declaring 2**33 bytes": (
        lambda: (_zip({"x.npy": _npy_header((2**33,)), "y.npy": _npy(np.zeros(4, np.int64))}), "h.npz", {}),
        r"^npz: 'h.npz' member 'x.npy' declares shape \(8589934592,\) of uint8 \(8,589,934,592 bytes\) but holds 0"),
    "MNIST label 2**31-1 (int32 IDX)": (
        lambda: (_mnist_zip(np.array([0, 1, 2**31 - 1], ">i4"), 0x0C), "m.zip", {}),
        r"^mnist: train labels: labels must be class indices in \[0, 999\]"),
    "MNIST label 2.0**40 (float64 IDX)": (
        lambda: (_mnist_zip(np.array([0, 1, 2.0**40], ">f8"), 0x0E), "m.zip", {}),
        r"^mnist: train labels: labels must be class indices in \[0, 999\]"),
    "30 RGB PNGs of 4096x4096 in a zip": (
        lambda: (_zip({f"{'ab'[i % 2]}/{i}.png": _png((4096, 4096), "RGB") for i in range(30)}), "big.zip", {}),
        r"^folder: zip 'big.zip' declares more than 268,435,456 pixels in all \(reached at '[ab]/\d+\.png'\)"),
    "8 RGB PNGs of 4096x4096 resized to 32 (allowed: one decoded at a time)": (
        lambda: (_zip({f"{'ab'[i % 2]}/{i}.png": _png((4096, 4096), "RGB") for i in range(8)}), "ok.zip",
                 {"image_size": 32}),
        None),
    "PNG declaring 20000x20000 (Pillow's bomb error)": (
        lambda: (_zip({"a/0.png": _png_declaring(20000), "b/0.png": _png((8, 8))}), "bomb.zip", {}),
        r"^image: 'a/0.png' is a decompression bomb"),
    "tar.gz GNU long name of 2 GB": (
        lambda: (_gz_tar([(_info("././@LongLink", 2000 << 20, tarfile.GNUTYPE_LONGNAME), 2000)]), "c.tar.gz", {}),
        r"^archive: tar 'c.tar.gz' has a tar header block of 2,097,152,000 bytes, over the limit of 1,048,576"),
}


def _npy_header(shape: tuple[int, ...]) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|u1", "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr)
    return buf.getvalue()


_CHILD = r"""
import gc, json, resource, sys
sys.path.insert(0, sys.argv[1])
from tests.engine.datasets import test_hostile_uploads as T
from engine.datasets import load_upload
payloads = {name: T.MEMORY_CASES[name][0]() for name in sys.argv[2:]}
used = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
limit = used + T.HEADROOM
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
for name in sys.argv[2:]:
    data, filename, kwargs = payloads.pop(name)
    try:
        load_upload(data, filename, **kwargs)
        out = "LOADED"
    except MemoryError:
        out = "MemoryError"
    except Exception as exc:
        out = f"{type(exc).__name__}: {exc}"
    del data
    gc.collect()
    print(json.dumps([name, out]), flush=True)
"""

#: The child may use this much address space beyond what it holds after its imports and crafting the files.
HEADROOM = 3 << 29  # 1.5 GiB


@pytest.fixture(scope="module")
def memory_outcomes():
    """Load every memory case once, in one child process under RLIMIT_AS; {case: outcome}."""
    env = {**os.environ, "MALLOC_ARENA_MAX": "2", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(ROOT), *MEMORY_CASES], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    outcomes = dict(json.loads(line) for line in proc.stdout.splitlines() if line.startswith("["))
    if not outcomes:
        pytest.fail(f"the child process reported nothing (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return outcomes | {"_stderr": proc.stderr[-2000:]}


@pytest.mark.parametrize("case", list(MEMORY_CASES))
def test_tiny_upload_declaring_gigabytes_is_refused_by_name(memory_outcomes, case):
    import re

    expected = MEMORY_CASES[case][1]
    out = memory_outcomes.get(case, f"no outcome (the child died): {memory_outcomes['_stderr']}")
    if expected is None:
        assert out == "LOADED", out
    else:
        assert out.startswith("ValueError: ") and re.search(expected, out[len("ValueError: "):]), out


# ----------------------------------------------------------------------------------------------------------------
# item 1: the restricted unpickler hands out nothing BUILD can modify
# ----------------------------------------------------------------------------------------------------------------

_ALLOWED_GLOBALS = [
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"), ("collections", "OrderedDict"),
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "bytearray"), ("builtins", "bytes"),
    ("__builtin__", "set"), ("__builtin__", "bytearray"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.numeric", "_frombuffer"), ("numpy.core.numeric", "_frombuffer"),
]


def _module_level_objects():
    """Every module-level object a pickle could have reached before the fix, and those the fix calls."""
    import _codecs
    import collections

    import engine.datasets.pickles as pickles

    core = np._core
    objs = [np.ndarray, np.dtype, _codecs.encode, collections.OrderedDict, set, frozenset, bytearray, bytes, dict,
            core.multiarray._reconstruct, core.multiarray.scalar, core.numeric._frombuffer]
    objs += [v for v in vars(pickles).values() if callable(v)]
    return objs


def _snapshot(obj):
    attrs = {}
    for name in ("__doc__", "__defaults__", "__kwdefaults__", "__name__", "__qualname__", "__module__", "__code__"):
        try:
            attrs[name] = getattr(obj, name)
        except AttributeError:
            pass
    attrs["__dict__"] = dict(getattr(obj, "__dict__", {}))
    return attrs


def test_build_cannot_modify_anything_find_class_hands_out():
    before = [(o, _snapshot(o)) for o in _module_level_objects()]
    for module, name in _ALLOWED_GLOBALS:
        glob = f"c{module}\n{name}\n".encode()
        dict_state = b"}(" + _uni("__doc__") + _uni("pwned") + _uni("marker") + b"K\x01u"
        slot_state = b"N}(" + _uni("__defaults__") + _uni("pwned") + b"\x85" + _uni("__name__") + _uni("pwned") + b"u\x86"
        for state in (dict_state, slot_state):
            with pytest.raises(ValueError, match=r"^pickle: pickle (modifies .* \(BUILD on a global\)|gives state)"):
                safe_unpickle(P2 + glob + state + b"b.")
    # what the allowed calls return is fresh: BUILD on a latin-1 byte (CPython shares one object per byte value)
    with pytest.raises(ValueError, match=r"gives state to a bytes \(BUILD\), which is not allowed"):
        safe_unpickle(P2 + b"c_codecs\nencode\n" + _uni("a") + _uni("latin1") + b"\x86R}" + _uni("x") + b"K\x01sb.")
    for obj, snap in before:
        assert _snapshot(obj) == snap, obj


def test_find_class_returns_fresh_stand_ins_not_the_real_globals():
    import _codecs

    from engine.datasets import RestrictedUnpickler

    u = RestrictedUnpickler(io.BytesIO(b""), 0)
    real = {("_codecs", "encode"): _codecs.encode, ("numpy", "dtype"): np.dtype, ("numpy", "ndarray"): np.ndarray,
            ("builtins", "bytearray"): bytearray, ("numpy._core.numeric", "_frombuffer"): np._core.numeric._frombuffer}
    for (module, name), obj in real.items():
        got = u.find_class(module, name)
        assert got is not obj and got is not u.find_class(module, name)
        assert not hasattr(got, "__dict__")


def test_pickled_dtype_state_cannot_smuggle_objects_or_fields():
    # a V8 dtype given the "holds objects" flags through BUILD, then used for an array's data
    dt = _dtype_op("V8") + b"(K\x03" + _uni("|") + b"NNNK\x08K\x01K?tb"
    payload = P2 + _RECONSTRUCT + b"K\x00\x85C\x01b\x87R(K\x01K\x02\x85" + dt + b"\x89C\x10" + b"\x01" * 16 + b"tb."
    with pytest.raises(ValueError, match=r"only plain number, string and byte dtypes are allowed"):
        safe_unpickle(payload)


def test_only_plain_containers_are_filled_and_objects_are_never_constructed():
    with pytest.raises(ValueError, match=r"fills a bytearray like a dict, which is not allowed"):
        safe_unpickle(P2 + b"c__builtin__\nbytearray\n" + _uni("ab") + b"\x85RK\x00K\x01s.")
    with pytest.raises(ValueError, match=r"builds an object with NEWOBJ/OBJ/INST, which is not allowed"):
        safe_unpickle(P2 + b"c__builtin__\nset\n)\x81.")


def test_opcode_count_is_bounded(monkeypatch):
    import engine.datasets.pickles as pickles

    monkeypatch.setattr(pickles, "MAX_PICKLE_OPCODES", 1000)
    with pytest.raises(ValueError, match=r"^pickle: pickle has more than 1,000 opcodes"):
        safe_unpickle(P2 + b"(" + b"N" * 2000 + b"l.")
    assert safe_unpickle(pickle.dumps(list(range(300)), protocol=2)) == list(range(300))


@pytest.mark.parametrize("protocol", range(6))
def test_real_pickles_still_load_whatever_the_protocol(protocol):
    import collections

    obj = {"u8": np.arange(12, dtype=np.uint8).reshape(3, 4), "be": np.arange(6, dtype=">i4").reshape(2, 3).T,
           "f": np.float64(2.5), "i": np.int64(7), "s": np.array(["ab", "c"]), "e": np.zeros((0, 3), np.float32),
           "misc": [1, 2.5, "x", b"y", b"", bytearray(b"z"), {1, 2}, frozenset([3]), collections.OrderedDict(a=1)]}
    out = safe_unpickle(pickle.dumps(obj, protocol=protocol))
    for key in ("u8", "be", "s", "e"):
        assert type(out[key]) is np.ndarray and out[key].shape == obj[key].shape
        np.testing.assert_array_equal(out[key], obj[key])
    assert out["f"] == 2.5 and out["i"] == 7 and out["misc"] == obj["misc"]


def test_a_real_cifar_batch_is_within_the_allowance():
    """A full-size batch (10,000 images) loads: the checks cost nothing a real file needs."""
    n = 10_000
    batch = {b"data": np.random.default_rng(0).integers(0, 256, (n, 3072), dtype=np.uint8),
             b"labels": [i % 10 for i in range(n)], b"filenames": [f"img_{i}.png".encode() for i in range(n)],
             b"batch_label": b"training batch 1 of 5"}
    for protocol in (2, 4, 5):
        out = safe_unpickle(pickle.dumps(batch, protocol=protocol), "'data_batch_1'")
        np.testing.assert_array_equal(out[b"data"], batch[b"data"])
        assert out[b"labels"] == batch[b"labels"]


# ----------------------------------------------------------------------------------------------------------------
# item 2: at most 1,000 classes, labels non-negative integers
# ----------------------------------------------------------------------------------------------------------------


def test_labels_are_non_negative_integers_below_the_class_cap():
    x = np.zeros((4, 8, 8), np.uint8)
    for y, message in (
        (np.array([0, 1, 0, -1]), r"^npz: y: labels must be class indices in \[0, 999\]"),
        (np.array([0.0, 1.0, 0.5, 1.0]), r"^npz: y: labels must be integers"),
        (np.array([0.0, 1.0, np.nan, 1.0]), r"^npz: y: labels must be integers"),
        (np.array([0.0, 1.0, np.inf, 1.0]), r"^npz: y: labels must be integers"),
        (np.array([0, 1, 0, 1000]), r"^npz: y: labels must be class indices in \[0, 999\] \(at most 1000 classes\)"),
        (np.array([0, 1, 0, 2**64 - 1], np.uint64), r"^npz: y: labels must be class indices in \[0, 999\]"),
    ):
        with pytest.raises(ValueError, match=message):
            load_upload(_npz(x=x, y=y), "y.npz")
    ds = load_upload(_npz(x=np.zeros((10, 8, 8), np.uint8), y=np.array([0, 999] * 5)), "ok.npz")
    assert ds.num_classes == 1000


def test_a_dataset_has_at_most_1000_classes():
    x = np.zeros((2, 1, 8, 8), np.float32)
    with pytest.raises(ValueError, match=r"^classes: at most 1000 classes are allowed, got 1001"):
        ImageDataset("t", x, np.array([0, 1]), x, np.array([0, 1]), [str(i) for i in range(1001)])


# ----------------------------------------------------------------------------------------------------------------
# item 3: image folders read every header before decoding anything
# ----------------------------------------------------------------------------------------------------------------


def test_folder_headers_are_all_checked_before_any_image_is_decoded(monkeypatch):
    import engine.datasets.formats as formats

    decoded = []
    real = formats.decode_image
    monkeypatch.setattr(formats, "decode_image", lambda data, name: decoded.append(name) or real(data, name))
    files = {f"a/{i}.png": _png((8, 8)) for i in range(3)} | {"b/0.png": _png((8, 8))}
    files |= {f"b/big{i}.png": _png_declaring(4096) for i in range(17)}  # 17 x 4096^2 pixels, 10 KB in all
    with pytest.raises(ValueError, match=r"^folder: zip 'f.zip' declares more than 268,435,456 pixels in all"):
        load_upload(_zip(files), "f.zip")
    assert decoded == []
    with pytest.raises(ValueError, match=r"^image: 'b/big.png' is 4097x4097, over the limit of 16777216 pixels"):
        load_upload(_zip({"a/0.png": _png((8, 8)), "b/big.png": _png_declaring(4097)}), "f.zip")
    assert decoded == []


def test_images_are_only_read_as_the_formats_their_extensions_name():
    """An ICO renamed .png is refused: ICO (and ICNS…) can load at a size other than their header's."""
    ico = _png((16, 16), "RGB", "ICO")
    with pytest.raises(ValueError, match=r"^image: 'a/0.png' is not a readable image"):
        load_upload(_zip({"a/0.png": ico, "b/0.png": _png((16, 16))}), "f.zip")


# ----------------------------------------------------------------------------------------------------------------
# item 4: compressed tars are read as a stream and stop at the limit
# ----------------------------------------------------------------------------------------------------------------


def test_tar_bomb_is_refused_from_its_header_before_its_data_is_inflated():
    # the header declares 2 GB; 200 MB of zeros follow, then broken data: reaching it would be a different error
    bomb = _gz_tar([(_info("cifar-10-batches-py/data_batch_1", 2000 << 20), 200)], tail=_CORRUPT)
    assert len(bomb) < 300_000
    with pytest.raises(ValueError, match=r"^archive: tar 'c.tar.gz' declares 2097.2 MB uncompressed, over the limit"):
        load_upload(bomb, "c.tar.gz")


def test_tar_members_are_counted_as_they_stream_and_reading_stops_at_the_limit():
    members = [(_info(f"cifar-10-batches-py/data_batch_{i}", 10 << 20), 10) for i in range(1, 21)]
    bomb = _gz_tar(members, tail=_CORRUPT)  # 200 MB in 20 members, broken after them
    with pytest.raises(ValueError, match=r"^archive: tar 'c.tar.gz' declares 52.4 MB uncompressed, over the limit of "
                                         r"50.0 MB"):
        load_upload(bomb, "c.tar.gz", max_bytes=50_000_000)
    # a member of an unknown type is skipped by tarfile, not extracted: the skipping is counted too
    odd = _gz_tar([(_info("junk", 200 << 20, b"Z"), 200)], tail=_CORRUPT)
    with pytest.raises(ValueError, match=r"^archive: tar 'c.tar.gz' decompresses to more than 21.8 MB"):
        load_upload(odd, "c.tar.gz", max_bytes=5_000_000)


def test_tars_still_load_in_every_compression_with_long_names_and_folders():
    ok = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}, protocol=2)
    deep = "cifar-10-batches-py/" + "x" * 120 + "/"  # a name longer than a ustar header holds
    files = {f"{deep}data_batch_{i}": ok for i in range(1, 6)} | {f"{deep}test_batch": ok, "._junk": b"\0" * 600}
    for mode, suffix in (("w:gz", "tar.gz"), ("w:bz2", "tar.bz2"), ("w:xz", "tar.xz"), ("w", "tar")):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode=mode, format=tarfile.PAX_FORMAT) as tf:
            tf.addfile(_dir("cifar-10-batches-py"))
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
        ds = load_upload(buf.getvalue(), f"cifar.{suffix}")
        assert ds.name == "cifar10" and len(ds.x_train) == 10 and len(ds.x_test) == 2


def test_large_tars_are_not_held_in_memory_but_streamed_to_again(monkeypatch):
    """Past TAR_HOLD_BYTES a member is only located; reading it streams again (from the start when behind)."""
    import engine.datasets.archives as archives

    rng = np.random.default_rng(0)
    batches = {i: {b"data": rng.integers(0, 256, (3, 3072), dtype=np.uint8), b"labels": [i % 10, 1, 2]}
               for i in range(1, 7)}
    names = {i: f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)} | {6: "cifar-10-batches-py/test_batch"}
    files = {names[i]: pickle.dumps(batches[i], protocol=2) for i in (4, 6, 3, 2, 5, 1)}  # the real file's order
    held = load_upload(_tar(files), "c.tar.gz")
    monkeypatch.setattr(archives, "TAR_HOLD_BYTES", 0)
    streamed = load_upload(_tar(files), "c.tar.gz")
    np.testing.assert_array_equal(streamed.x_train, held.x_train)
    np.testing.assert_array_equal(streamed.y_test, held.y_test)
    np.testing.assert_array_equal(held.x_test.reshape(3, -1), batches[6][b"data"] / np.float32(255))


def _dir(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info


def test_zip_headers_that_lie_about_sizes_are_caught_while_reading(monkeypatch):
    data = bytes(20_000_000)
    raw = bytearray(_zip({"a/x.png": data, "b/y.png": _png((8, 8))}))
    struct.pack_into("<I", raw, 22, 100)  # local header: uncompressed size 100
    struct.pack_into("<I", raw, raw.find(b"PK\x01\x02") + 24, 100)  # central directory too
    with pytest.raises(ValueError, match=r"^archive: member 'a/x.png' of zip 'lie.zip' cannot be read \(Bad CRC-32"):
        load_upload(bytes(raw), "lie.zip")
    import engine.datasets.archives as archives

    monkeypatch.setattr(archives, "MAX_MEMBERS", 10)
    with pytest.raises(ValueError, match=r"^archive: zip 'many.zip' has 11 members, over the limit of 10"):
        load_upload(_zip({f"a/{i}.png": b"" for i in range(11)}), "many.zip")
    with pytest.raises(ValueError, match=r"^archive: tar 'many.tar' has more than 10 members, over the limit"):
        load_upload(_tar({f"a/{i}.png": b"" for i in range(11)}, "w"), "many.tar")
