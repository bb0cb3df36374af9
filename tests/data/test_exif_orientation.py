"""Every stage reads an image upright: a file stored sideways with an EXIF orientation tag (what most phones write)
is turned as a viewer shows it, by the one reader that validate, augment, evaluate and predict share."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageOps

from pipeline.data import images


def encoded(array: np.ndarray, tag: int, fmt: str) -> bytes:
    picture = Image.fromarray(array)
    exif = picture.getexif()
    exif[ExifTags.Base.Orientation] = tag
    buffer = io.BytesIO()
    picture.save(buffer, fmt, exif=exif.tobytes(), **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


@pytest.mark.parametrize("tag", range(1, 9))
def test_each_orientation_reads_as_a_viewer_shows_it(tag):
    stored = np.random.default_rng(tag).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    data = encoded(stored, tag, "PNG")  # lossless: the comparison is exact
    shown = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    np.testing.assert_array_equal(images.decode_rgb(data, "x.png"), shown)


def test_a_phone_jpeg_is_described_and_read_upright(tmp_path):
    # a portrait photo stored as landscape pixels with orientation 6 ("rotate 90 clockwise to view")
    stored = np.zeros((40, 60, 3), np.uint8)
    stored[:, :10] = 255  # a white band on the stored left edge: the top edge once upright
    path = tmp_path / "phone.jpg"
    path.write_bytes(encoded(stored, 6, "JPEG"))
    info = images.inspect(path)
    assert (info.width, info.height) == (40, 60)
    upright = images.read_rgb(path)
    assert upright.shape == (60, 40, 3)
    assert upright[:10].mean() > 200 and upright[20:].mean() < 50


def test_no_or_unreadable_exif_means_as_stored():
    stored = np.random.default_rng(0).integers(0, 256, (8, 12, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, "PNG")
    assert images.orientation(buffer.getvalue()) == 1
    np.testing.assert_array_equal(images.decode_rgb(buffer.getvalue()), stored)
