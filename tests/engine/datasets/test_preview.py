"""engine.datasets preview and the one image decoder: what a page shows before training and how pictures enter."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from engine.datasets import MAX_IMAGE_PIXELS, decode_image, load_dataset, load_image, sample_grid


def test_labelled_mosaic_puts_class_names_left_of_the_rows():
    g = sample_grid(load_dataset("digits", seed=0), per_class=4)
    plain, labelled = g.mosaic(pad=2, scale=5), g.labelled(target=40, strip=110)
    assert labelled.shape == (plain.shape[0], plain.shape[1] + 110, 3) and labelled.dtype == np.uint8
    np.testing.assert_array_equal(labelled[:, 110:], plain)
    assert (labelled[:, :110] < 128).any()  # the names are drawn in the strip


def test_one_decoder_for_files_bytes_and_bomb_checks(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (12, 6), (255, 0, 0)).save(buf, format="PNG")
    (tmp_path / "red.png").write_bytes(buf.getvalue())
    from_file = load_image(tmp_path / "red.png", 3, (4, 4))
    np.testing.assert_array_equal(from_file, load_image(buf.getvalue(), 3, (4, 4)))
    assert from_file.shape == (1, 3, 4, 4) and np.allclose(from_file[0, 0], 1.0) and np.allclose(from_file[0, 1], 0)
    with pytest.raises(ValueError, match=r"^image: .*cannot be read"):
        load_image(tmp_path / "missing.png", 1, (4, 4))
    big = io.BytesIO()
    Image.new("L", (4097, 4097)).save(big, format="PNG")
    with pytest.raises(ValueError, match=rf"over the limit of {MAX_IMAGE_PIXELS} pixels"):
        decode_image(big.getvalue(), "big.png")
