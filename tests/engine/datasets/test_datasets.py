"""engine.datasets: built-in datasets, each file loader on tiny files written here, and each kind of bad upload."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import tarfile
import zipfile

import numpy as np
import pytest
import torch

from engine.datasets import (
    DATASETS,
    Augmentation,
    ImageDataset,
    augment_batch,
    detect_format,
    load_dataset,
    load_upload,
    read_idx,
    safe_unpickle,
    sample_grid,
)

RNG = np.random.default_rng(0)


# ----------------------------------------------------------------------------------------------------------------
# helpers writing tiny files of each format
# ----------------------------------------------------------------------------------------------------------------


def _cifar_batch(n: int, num_classes: int, label_key: str, bytes_keys: bool = True) -> bytes:
    data = RNG.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [int(i % num_classes) for i in range(n)]
    d = {"data": data, label_key: labels, "batch_label": "tiny"}
    if bytes_keys:  # the real files were written by Python 2: keys come back as bytes
        d = {k.encode(): v for k, v in d.items()}
    return pickle.dumps(d, protocol=2)


def _cifar10_files() -> dict[str, bytes]:
    files = {f"cifar-10-batches-py/data_batch_{i}": _cifar_batch(6, 10, "labels") for i in range(1, 6)}
    files["cifar-10-batches-py/test_batch"] = _cifar_batch(4, 10, "labels", bytes_keys=False)
    names = [f"class{i}".encode() for i in range(10)]
    files["cifar-10-batches-py/batches.meta"] = pickle.dumps({b"label_names": names, b"num_cases_per_batch": 6})
    return files


def _tar_bytes(files: dict[str, bytes], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _idx(arr: np.ndarray) -> bytes:
    assert arr.dtype == np.uint8
    return bytes([0, 0, 0x08, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape) + arr.tobytes()


def _mnist_files(gz: bool) -> dict[str, bytes]:
    out = {}
    for stem, n in (("train", 12), ("t10k", 5)):
        x = RNG.integers(0, 256, (n, 6, 6), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        for kind, arr, dims in (("images", x, 3), ("labels", y, 1)):
            raw = _idx(arr)
            name = f"{stem}-{kind}-idx{dims}-ubyte"
            if gz:
                raw, name = gzip.compress(raw), name + ".gz"
            out[name] = raw
    return out


def _png(color, size=(6, 6), mode="RGB") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format="PNG")
    return buf.getvalue()


def _folder_files(prefix: str = "pets/") -> dict[str, bytes]:
    files = {}
    for cls, color in (("cat", (200, 10, 10)), ("dog", (10, 200, 10)), ("fox", (10, 10, 200))):
        for i in range(5):
            files[f"{prefix}{cls}/{i}.png"] = _png(color)
    return files


def _write_tree(root, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _check(ds: ImageDataset, channels: int, size: tuple[int, int], n_classes: int) -> None:
    assert ds.x_train.dtype == np.float32 and ds.x_test.dtype == np.float32
    assert ds.y_train.dtype == np.int64 and ds.y_test.dtype == np.int64
    assert ds.x_train.ndim == 4 and ds.x_train.shape[1:] == (channels, *size)
    assert ds.in_channels == channels and ds.image_size == size and ds.num_classes == n_classes
    assert len(ds.classes) == n_classes
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    assert ds.y_train.max() < n_classes and ds.y_test.max() < n_classes
    assert isinstance(ds.augmentation, Augmentation)


# ----------------------------------------------------------------------------------------------------------------
# registry and built-ins
# ----------------------------------------------------------------------------------------------------------------


def test_registry_entries_and_augmentation_defaults():
    assert {"digits", "synthetic", "cifar10", "cifar100", "mnist", "folder", "npz"} <= set(DATASETS)
    for name, info in DATASETS.items():
        assert info.title and info.description
        assert info.augmentation.pad_crop > 0, name
    assert not DATASETS["digits"].augmentation.hflip and not DATASETS["mnist"].augmentation.hflip
    assert DATASETS["cifar10"].augmentation.hflip and DATASETS["cifar100"].augmentation.hflip
    assert not DATASETS["digits"].needs_path and not DATASETS["synthetic"].needs_path
    assert all(DATASETS[k].needs_path for k in ("cifar10", "cifar100", "mnist", "folder", "npz"))


def test_digits_real_seeded_80_20_split():
    ds = load_dataset("digits", seed=0)
    _check(ds, 1, (8, 8), 10)
    assert len(ds.x_train) + len(ds.x_test) == 1797
    assert abs(len(ds.x_test) / 1797 - 0.2) < 0.01
    counts = ds.class_counts("test")
    assert min(counts) >= 30  # stratified: every digit is in the test split
    again = load_dataset("digits", seed=0)
    np.testing.assert_array_equal(ds.y_train, again.y_train)
    np.testing.assert_array_equal(ds.x_test, again.x_test)
    other = load_dataset("digits", seed=1)
    assert not np.array_equal(ds.y_train, other.y_train)
    assert ds.augmentation == Augmentation(pad_crop=1, hflip=False)


def test_synthetic_deterministic_balanced_and_not_trivial():
    a = load_dataset("synthetic", seed=3)
    b = load_dataset("synthetic", seed=3)
    c = load_dataset("synthetic", seed=4)
    _check(a, 3, (16, 16), 10)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, c.x_train)
    counts = a.class_counts()
    assert max(counts) - min(counts) <= 2
    # Not trivial: the mean colour of an image says (almost) nothing about its class.
    feat_tr = a.x_train.mean(axis=(2, 3))
    feat_te = a.x_test.mean(axis=(2, 3))
    centroids = np.stack([feat_tr[a.y_train == k].mean(0) for k in range(10)])
    pred = np.argmin(((feat_te[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (pred == a.y_test).mean() < 0.35
    # Learnable: a nearest-centroid classifier on the pixels themselves beats chance clearly.
    flat_tr = a.x_train.reshape(len(a.x_train), -1)
    flat_te = a.x_test.reshape(len(a.x_test), -1)
    gray_tr = flat_tr - flat_tr.mean(1, keepdims=True)
    gray_te = flat_te - flat_te.mean(1, keepdims=True)
    gray_tr /= np.linalg.norm(gray_tr, axis=1, keepdims=True)
    gray_te /= np.linalg.norm(gray_te, axis=1, keepdims=True)
    sims = np.abs(gray_te @ gray_tr.T)  # colour-inverted shapes are the same class
    knn = a.y_train[np.argmax(sims, axis=1)]
    assert (knn == a.y_test).mean() > 0.2


def test_unknown_dataset_and_missing_path():
    with pytest.raises(ValueError, match=r"^dataset: unknown dataset 'imagenet'"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match=r"^path: dataset 'cifar10' is read from a file"):
        load_dataset("cifar10")
    with pytest.raises(ValueError, match=r"^path: .* does not exist"):
        load_dataset("npz", path="/nonexistent/file.npz")


def test_max_train_max_test_subsets():
    ds = load_dataset("digits", seed=0, max_train=100, max_test=50)
    assert len(ds.x_train) == 100 and len(ds.x_test) == 50


# ----------------------------------------------------------------------------------------------------------------
# augmentation
# ----------------------------------------------------------------------------------------------------------------


def test_augmentation_validation():
    with pytest.raises(ValueError, match=r"^pad_crop: must be in \[0, 16\]"):
        Augmentation(pad_crop=17)
    with pytest.raises(ValueError, match=r"^pad_crop:"):
        Augmentation(pad_crop=-1)
    a = Augmentation(pad_crop=4, hflip=True)
    assert Augmentation.from_json(a.to_json()) == a


def test_augment_identity_and_shapes():
    x = torch.rand(7, 3, 9, 9)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(augment_batch(x, Augmentation(), g), x)
    y = augment_batch(x, Augmentation(pad_crop=2, hflip=True), g)
    assert y.shape == x.shape and y.dtype == x.dtype


def test_augment_flip_only_gives_each_sample_or_its_mirror():
    x = torch.rand(64, 2, 5, 6)
    y = augment_batch(x, Augmentation(pad_crop=0, hflip=True), torch.Generator().manual_seed(1))
    flipped = 0
    for i in range(len(x)):
        if torch.equal(y[i], x[i]):
            continue
        assert torch.equal(y[i], x[i].flip(-1))
        flipped += 1
    assert 10 < flipped < 54  # about half


def test_augment_pad_crop_is_a_zero_padded_shift_and_seeded():
    x = torch.rand(32, 1, 6, 6) + 0.5  # strictly positive, so padding zeros are recognisable
    aug = Augmentation(pad_crop=2, hflip=False)
    y = augment_batch(x, aug, torch.Generator().manual_seed(5))
    y2 = augment_batch(x, aug, torch.Generator().manual_seed(5))
    assert torch.equal(y, y2)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    shifts = set()
    for i in range(len(x)):
        match = [(dy, dx) for dy in range(5) for dx in range(5) if torch.equal(y[i], padded[i, :, dy:dy + 6, dx:dx + 6])]
        assert match, f"sample {i} is not a shifted crop"
        shifts.add(match[0])
    assert len(shifts) > 5


# ----------------------------------------------------------------------------------------------------------------
# file loaders on tiny files
# ----------------------------------------------------------------------------------------------------------------


def test_cifar10_from_tar_gz_dir_and_upload(tmp_path):
    files = _cifar10_files()
    tar_path = tmp_path / "cifar-10-python.tar.gz"
    tar_path.write_bytes(_tar_bytes(files))
    ds = load_dataset("cifar10", path=tar_path)
    _check(ds, 3, (32, 32), 10)
    assert len(ds.x_train) == 30 and len(ds.x_test) == 4
    assert ds.classes[3] == "class3"
    # pixel layout: the first 1024 bytes are the red plane, row-major
    raw = pickle.loads(files["cifar-10-batches-py/data_batch_1"])[b"data"]
    np.testing.assert_allclose(ds.x_train[0, 0], raw[0, :1024].reshape(32, 32) / 255.0, rtol=1e-6)
    np.testing.assert_allclose(ds.x_train[0, 2], raw[0, 2048:].reshape(32, 32) / 255.0, rtol=1e-6)
    folder = tmp_path / "dir"
    _write_tree(folder, files)
    ds2 = load_dataset("cifar10", path=folder / "cifar-10-batches-py")
    np.testing.assert_array_equal(ds.x_train, ds2.x_train)
    up = load_upload(_zip_bytes(files), "cifar.zip")
    assert up.name == "cifar10" and len(up.x_train) == 30


def test_cifar100_fine_labels(tmp_path):
    files = {
        "cifar-100-python/train": _cifar_batch(8, 100, "fine_labels"),
        "cifar-100-python/test": _cifar_batch(3, 100, "fine_labels"),
        "cifar-100-python/meta": pickle.dumps({b"fine_label_names": [f"c{i}".encode() for i in range(100)]}),
    }
    path = tmp_path / "cifar-100-python.tar.gz"
    path.write_bytes(_tar_bytes(files))
    ds = load_dataset("cifar100", path=path)
    _check(ds, 3, (32, 32), 100)
    assert ds.classes[42] == "c42"
    assert detect_format(str(path)) == "cifar100"


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({b"data": _Evil(marker), b"labels": [0]}, protocol=2)
    with pytest.raises(ValueError, match=r"^pickle: .*(posix|os|nt)\.system, which is not allowed"):
        safe_unpickle(payload, "'data_batch_1'")
    files = _cifar10_files()
    files["cifar-10-batches-py/data_batch_2"] = payload
    with pytest.raises(ValueError, match=r"^pickle: .*not allowed"):
        load_upload(_tar_bytes(files), "cifar-10-python.tar.gz")
    assert not marker.exists()
    # arrays and plain containers are fine, whichever protocol wrote them
    for protocol in (2, 4, 5):
        obj = safe_unpickle(pickle.dumps({"a": np.arange(5, dtype=np.uint8), "b": [1, 2.5, "s", b"x"]},
                                         protocol=protocol))
        np.testing.assert_array_equal(obj["a"], np.arange(5))
    with pytest.raises(ValueError, match=r"^pickle: .*not a readable pickle"):
        safe_unpickle(b"\x80\x02garbage")


def test_cifar_wrong_shape_is_reported():
    files = _cifar10_files()
    files["cifar-10-batches-py/test_batch"] = pickle.dumps({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4})
    with pytest.raises(ValueError, match=r"^cifar: .*\(N, 3072\)"):
        load_upload(_tar_bytes(files), "c.tar.gz", dataset="cifar10")


def test_mnist_idx_plain_and_gz(tmp_path):
    for gz in (False, True):
        files = _mnist_files(gz)
        folder = tmp_path / f"mnist{int(gz)}"
        _write_tree(folder, files)
        ds = load_dataset("mnist", path=folder)
        _check(ds, 1, (6, 6), 10)
        assert len(ds.x_train) == 12 and len(ds.x_test) == 5
        assert not ds.augmentation.hflip
        up = load_upload(_zip_bytes(files), "mnist.zip")
        assert up.name == "mnist"
        np.testing.assert_array_equal(up.x_test, ds.x_test)


def test_idx_errors():
    with pytest.raises(ValueError, match=r"^idx: .*bad magic"):
        read_idx(b"\x01\x02\x03\x04rest")
    good = _idx(np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(ValueError, match=r"^idx: .*declares shape \(2, 3, 3\)"):
        read_idx(good[:-1])
    files = _mnist_files(False)
    files["train-labels-idx1-ubyte"] = _idx(np.zeros(3, np.uint8))  # 12 images, 3 labels
    with pytest.raises(ValueError, match=r"^mnist: train has 12 images but labels of shape \(3,\)"):
        load_upload(_zip_bytes(files), "m.zip")
    del files["t10k-images-idx3-ubyte"]
    with pytest.raises(ValueError, match=r"^mnist: .*lacks the test images"):
        load_upload(_zip_bytes(files), "m.zip", dataset="mnist")


def test_folder_dir_zip_split_layout_and_grey(tmp_path):
    files = _folder_files()
    folder = tmp_path / "imgs"
    _write_tree(folder, files)
    ds = load_dataset("folder", path=folder, seed=0)
    _check(ds, 3, (6, 6), 3)
    assert ds.classes == ["cat", "dog", "fox"]
    assert len(ds.x_train) + len(ds.x_test) == 15 and len(ds.x_test) == 3
    cat = ds.x_train[ds.y_train == 0][0]
    np.testing.assert_allclose(cat[:, 0, 0], np.array([200, 10, 10]) / 255.0, rtol=1e-6)
    up = load_upload(_zip_bytes(files), "pets.zip")
    assert up.name == "folder" and up.classes == ds.classes
    # train/ and test/ layout, grey images of mixed sizes (resized to the most common size)
    split = {
        "train/a/0.png": _png(10, (5, 5), "L"), "train/a/1.png": _png(20, (5, 5), "L"),
        "train/b/0.png": _png(200, (5, 5), "L"), "train/b/1.png": _png(210, (9, 7), "L"),
        "test/a/0.png": _png(15, (5, 5), "L"), "test/b/0.png": _png(205, (5, 5), "L"),
    }
    ds2 = load_upload(_zip_bytes(split), "split.zip")
    _check(ds2, 1, (5, 5), 2)
    assert len(ds2.x_train) == 4 and len(ds2.x_test) == 2
    ds3 = load_upload(_zip_bytes(split), "split.zip", image_size=8)
    assert ds3.image_size == (8, 8)


def test_npz_variants(tmp_path):
    x = RNG.integers(0, 256, (20, 7, 7, 3), dtype=np.uint8)  # NHWC
    y = np.arange(20) % 4
    path = tmp_path / "d.npz"
    path.write_bytes(_npz(x_train=x[:15], y_train=y[:15], x_test=x[15:], y_test=y[15:],
                          classes=np.array(["a", "b", "c", "d"])))
    ds = load_dataset("npz", path=path)
    _check(ds, 3, (7, 7), 4)
    np.testing.assert_allclose(ds.x_train[2, 1], x[2, :, :, 1] / 255.0, rtol=1e-6)
    assert ds.classes == ["a", "b", "c", "d"]
    ds2 = load_upload(_npz(x=RNG.random((30, 1, 8, 8)).astype(np.float32), y=np.arange(30) % 3), "xy.npz")
    _check(ds2, 1, (8, 8), 3)
    assert len(ds2.x_train) == 24 and len(ds2.x_test) == 6


# ----------------------------------------------------------------------------------------------------------------
# bad uploads: each gives its own clear error
# ----------------------------------------------------------------------------------------------------------------


def test_bad_npz_uploads():
    with pytest.raises(ValueError, match=r"^npz: x: images must have 1 or 3 channels"):
        load_upload(_npz(x=np.zeros((4, 5, 8, 8), np.uint8), y=np.zeros(4, int)), "bad.npz")
    with pytest.raises(ValueError, match=r"^npz: x has 4 images but y has 3 labels"):
        load_upload(_npz(x=np.zeros((4, 8, 8), np.uint8), y=np.zeros(3, int)), "bad.npz")
    with pytest.raises(ValueError, match=r"^npz: .*must hold arrays x_train and y_train"):
        load_upload(_npz(images=np.zeros((4, 8, 8), np.uint8)), "bad.npz")
    with pytest.raises(ValueError, match=r"^npz: .*float pixels must be finite and in \[0, 1\]"):
        load_upload(_npz(x=np.full((4, 8, 8), 3.0), y=np.zeros(4, int)), "bad.npz")
    obj = io.BytesIO()
    np.savez(obj, x=np.array([{"a": 1}] * 4, dtype=object), y=np.zeros(4, int))
    with pytest.raises(ValueError, match=r"^npz: .*object arrays"):
        load_upload(obj.getvalue(), "pickled.npz")
    with pytest.raises(ValueError, match=r"^archive: .*not a readable zip"):
        load_upload(b"this is not a zip at all", "garbage.npz")


def test_unreadable_and_unknown_uploads():
    with pytest.raises(ValueError, match=r"^archive: zip 'x.zip' is not a readable zip file"):
        load_upload(os.urandom(200), "x.zip")
    with pytest.raises(ValueError, match=r"^archive: tar 'x.tar.gz' is not a readable tar file"):
        load_upload(os.urandom(200), "x.tar.gz")
    with pytest.raises(ValueError, match=r"^upload: cannot tell what"):
        load_upload(b"hello", "notes.txt")
    with pytest.raises(ValueError, match=r"^upload: 'e.zip' is empty"):
        load_upload(b"", "e.zip")
    files = _folder_files("")
    files["cat/broken.png"] = b"\x89PNG\r\n\x1a\n not really"
    with pytest.raises(ValueError, match=r"^image: 'cat/broken.png' is not a readable image"):
        load_upload(_zip_bytes(files), "pets.zip")
    with pytest.raises(ValueError, match=r"^folder: image 'loose.png' is not inside a class sub-folder"):
        load_upload(_zip_bytes({"loose.png": _png(1), "a/1.png": _png(2)}), "flat.zip")
    with pytest.raises(ValueError, match=r"^folder: found 1 class sub-folder"):
        load_upload(_zip_bytes({"only/1.png": _png(1), "only/2.png": _png(2)}), "one.zip")


def test_path_traversal_in_zip_and_tar_is_refused():
    files = _folder_files("")
    files["../evil.png"] = _png(3)
    with pytest.raises(ValueError, match=r"^archive: member '\.\./evil\.png' points outside the archive"):
        load_upload(_zip_bytes(files), "pets.zip")
    with pytest.raises(ValueError, match=r"^archive: member '/etc/evil\.png' points outside the archive"):
        load_upload(_zip_bytes({"/etc/evil.png": _png(3), **_folder_files("")}), "pets.zip")
    with pytest.raises(ValueError, match=r"points outside the archive"):
        load_upload(_tar_bytes({"a/../../evil": b"x", **_cifar10_files()}), "c.tar.gz")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        link = tarfile.TarInfo("data_batch_1")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tf.addfile(link)
    with pytest.raises(ValueError, match=r"^archive: member 'data_batch_1' is a link"):
        load_upload(buf.getvalue(), "c.tar")


def test_oversized_archives_are_refused_from_declared_sizes(tmp_path, monkeypatch):
    big = _zip_bytes({"a/1.png": _png(1), "a/zeros.bin": bytes(3_000_000), "b/1.png": _png(2)})
    assert len(big) < 100_000  # compresses well: only the declared size gives it away
    reads = []
    import engine.datasets.archives as data_mod

    orig = data_mod._ZipArchive.read
    monkeypatch.setattr(data_mod._ZipArchive, "read", lambda self, name: reads.append(name) or orig(self, name))
    with pytest.raises(ValueError, match=r"^archive: zip 'big.zip' declares 3\.0 MB uncompressed, over the limit"):
        load_upload(big, "big.zip", max_bytes=1_000_000)
    assert reads == []  # refused before a single member was read
    p = tmp_path / "big.zip"
    p.write_bytes(big)
    with pytest.raises(ValueError, match=r"over the limit of 1\.0 MB"):
        load_dataset("folder", path=p, max_bytes=1_000_000)
    monkeypatch.setenv("FRACTAL_LAB_MAX_DATASET_BYTES", "1000000")
    with pytest.raises(ValueError, match=r"over the limit"):
        load_dataset("folder", path=p)
    with pytest.raises(ValueError, match=r"^upload: 'raw.npz' is 2\.0 MB, over the limit"):
        load_upload(bytes(2_000_000), "raw.npz", max_bytes=1_000_000)
    # a gzip member that inflates past the limit is stopped while decompressing
    files = _mnist_files(False)
    files["train-images-idx3-ubyte.gz"] = gzip.compress(bytes(2_000_000))
    del files["train-images-idx3-ubyte"]
    monkeypatch.delenv("FRACTAL_LAB_MAX_DATASET_BYTES")
    with pytest.raises(ValueError, match=r"decompresses to more than 1\.0 MB"):
        load_upload(_zip_bytes(files), "m.zip", max_bytes=1_000_000)


# ----------------------------------------------------------------------------------------------------------------
# previews
# ----------------------------------------------------------------------------------------------------------------


def test_sample_grid_and_mosaic():
    ds = load_dataset("digits", seed=0)
    g = sample_grid(ds, per_class=5)
    assert g.images.shape == (10, 5, 1, 8, 8) and g.present.all()
    for k in range(10):
        assert (ds.y_train[g.indices[k]] == k).all()
        np.testing.assert_array_equal(g.images[k, 0], ds.x_train[g.indices[k, 0]])
    m = g.mosaic(pad=1, scale=2)
    assert m.shape == (10 * 17 + 1, 5 * 17 + 1, 3) and m.dtype == np.uint8
    few = load_upload(_zip_bytes(_folder_files()), "p.zip")
    g2 = sample_grid(few, per_class=8, split="test")
    assert g2.present.sum() == len(few.x_test) and (g2.indices[~g2.present] == -1).all()
    with pytest.raises(ValueError, match=r"^per_class:"):
        sample_grid(ds, per_class=0)


def test_imagedataset_validates_shapes():
    x = np.zeros((4, 1, 8, 8), np.float32)
    y = np.zeros(4, np.int64)
    with pytest.raises(ValueError, match=r"^y_train: expected 4 labels"):
        ImageDataset("t", x, y[:3], x, y, ["a", "b"])
    with pytest.raises(ValueError, match=r"^x_test: test images are"):
        ImageDataset("t", x, y, np.zeros((4, 1, 6, 6), np.float32), y, ["a", "b"])
    with pytest.raises(ValueError, match=r"^y_train: labels must be in \[0, 1\]"):
        ImageDataset("t", x, y + 2, x, y, ["a", "b"])
    with pytest.raises(ValueError, match=r"^classes: need at least 2"):
        ImageDataset("t", x, y, x, y, ["a"])
    ds = ImageDataset("t", x, y, x, y, ["a", "b"])
    assert len(ds.fingerprint()) == 16


def test_image_from_bytes_converts_and_resizes():
    from engine.datasets import image_from_bytes

    arr = image_from_bytes(_png((255, 0, 0), size=(10, 6)), "red.png", 3, (8, 8))
    assert arr.shape == (3, 8, 8) and arr.dtype == np.float32
    np.testing.assert_allclose(arr[:, 4, 4], [1.0, 0.0, 0.0], atol=1e-6)
    grey = image_from_bytes(_png((255, 255, 255)), "white.png", 1, (4, 5))
    assert grey.shape == (1, 4, 5) and np.allclose(grey, 1.0)
    with pytest.raises(ValueError, match=r"^image: 'x.png' is not a readable image"):
        image_from_bytes(b"not an image", "x.png", 1, (8, 8))
