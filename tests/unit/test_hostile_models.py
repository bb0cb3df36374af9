"""Hostile inputs to predict, export and sample-data: each is refused by one line naming the file and the fix, with
exit status 1 and no traceback, before any real work. Tiny models only; nothing here trains or converts a model."""

from __future__ import annotations

import struct
import zipfile
import zlib
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest
import yaml

from pipeline.__main__ import main
from pipeline.data import images
from pipeline.data.images import write_png
from pipeline.serving import predict
from tests import workspace
from tests.unit import tiny_models

SAVED_BY_TRAIN = "give a model saved by the train stage (models/<name>/model.keras)"


def tiny_head(name: str, *between: keras.layers.Layer) -> keras.Model:
    """A 75 px model with one output layer called ``name``: cheap to build and save."""
    pixels = keras.Input((75, 75, 3))
    x = pixels
    for layer in between:
        x = layer(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(pixels, keras.layers.Dense(6, activation="softmax", name=name)(x))


def write_zip_without_config(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", '{"keras_version": "3.15.0"}')


# model files: (case, how to write it at ``path``, the message after "error: <path>: ")
MODEL_FILES = [
    ("garbage", lambda p: p.write_bytes(np.random.default_rng(0).bytes(2048)), "not a Keras model file (not a zip"),
    ("zero-byte", lambda p: p.write_bytes(b""), "not a Keras model file (a zero-byte file); " + SAVED_BY_TRAIN),
    ("no config.json", write_zip_without_config, "not a Keras model file (a zip archive without config.json)"),
    ("a folder", lambda p: p.mkdir(), "a folder, not a Keras model file; " + SAVED_BY_TRAIN),
    ("no emotion output", lambda p: tiny_head("scores").save(p), "the model has no `emotion` output layer"),
    (
        "lambda layer",
        lambda p: tiny_head("emotion", keras.layers.Lambda(lambda x: x / 255.0)).save(p),
        "Keras safe mode refused to load it: it holds Python code",
    ),
]


@pytest.fixture(scope="module")
def params_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("params") / "params.yaml"
    path.write_text(yaml.safe_dump(workspace.profile_params()))
    return path


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "model.keras"
    tiny_models.model("irv2").save(path)
    return path


@pytest.fixture(scope="module")
def picture(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pictures") / "face.png"
    write_png(path, np.full((80, 80, 3), 128, np.uint8))
    return path


def refused(capsys, argv: list[str]) -> str:
    """The one error line of a command that must fail cleanly."""
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("command", ["predict", "export"])
@pytest.mark.parametrize(("write", "expected"), [c[1:] for c in MODEL_FILES], ids=[c[0] for c in MODEL_FILES])
def test_a_hostile_model_file_is_one_clear_line(capsys, tmp_path, params_file, picture, command, write, expected):
    path = tmp_path / "model.keras"
    write(path)
    target = [str(picture)] if command == "predict" else ["--format", "tflite", "--out", str(tmp_path / "m.tflite")]
    model = ["--model", "irv2", "--model-file", str(path)]
    line = refused(capsys, ["--params", str(params_file), command, *target, *model])
    assert line.startswith(f"error: {path}: {expected}")
    assert not (tmp_path / "m.tflite").exists()


def a_folder(tmp_path: Path) -> Path:
    (tmp_path / "rows").mkdir()
    return tmp_path / "rows"


def a_file(tmp_path: Path) -> Path:
    (tmp_path / "notes.txt").write_text("mine")
    return tmp_path / "notes.txt"


def a_full_folder(tmp_path: Path) -> Path:
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "keep.txt").write_text("mine")
    return tmp_path / "raw"


# command-line arguments: (case, command and its options up to the hostile one, the option, what it names, message)
ARGUMENTS = [
    ("predict --out folder", ["predict", "{picture}", "--model", "irv2", "--model-file", "{model}"], "--out", a_folder,
     "--out {path}: is a folder; give the path of the file to write the rows to"),
    ("predict --annotate file", ["predict", "{picture}", "--model", "irv2", "--model-file", "{model}"], "--annotate",
     a_file, "--annotate {path}: is a file; give a folder (created if missing) for the annotated copies"),
    ("sample-data --out non-empty", ["sample-data"], "--out", a_full_folder,
     "{path} already exists and is not empty; sample data is written only to a new or empty folder"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "option", "make", "expected"), [c[1:] for c in ARGUMENTS], ids=[c[0] for c in ARGUMENTS]
)
def test_a_hostile_argument_is_refused_before_any_work(
    capsys, monkeypatch, tmp_path, params_file, model_file, picture, argv, option, make, expected
):
    path = make(tmp_path)
    before = sorted(tmp_path.rglob("*"))

    def no_work(*args, **kwargs):
        raise AssertionError("the command started work before checking its arguments")

    monkeypatch.setattr(keras.models, "load_model", no_work)
    argv = [a.format(picture=picture, model=model_file) for a in argv]
    line = refused(capsys, ["--params", str(params_file), *argv, option, str(path)])
    assert line == "error: " + expected.format(path=path)
    assert sorted(tmp_path.rglob("*")) == before


def huge_png(path: Path, width: int, height: int) -> Path:
    """A valid 1-bit grayscale PNG of ``width`` x ``height``, written row by row: small on disk and in memory."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = b"\0" * (1 + (width + 7) // 8)  # filter type 0, then the packed bits of one row
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize(
    ("width", "height", "cap", "size"),
    [
        (30000, 30000, images.MAX_PIXELS, "more than 178,956,970 pixels"),  # past Pillow's own bound too
        (12000, 9000, images.MAX_PIXELS, "12000x9000 (108,000,000 pixels)"),
        (200, 100, 10_000, "200x100 (20,000 pixels)"),
    ],
)
def test_the_pixel_cap_is_read_from_the_header_before_decoding(monkeypatch, tmp_path, width, height, cap, size):
    path = huge_png(tmp_path / "big.png", width, height)
    assert path.stat().st_size < 200_000
    monkeypatch.setattr(images, "MAX_PIXELS", cap)

    def no_decode(*args, **kwargs):
        raise AssertionError("decoded an image over the pixel cap")

    monkeypatch.setattr(cv2, "imdecode", no_decode)
    with pytest.raises(images.ImageReadError) as refusal:
        images.read_rgb(path)
    assert str(refusal.value) == (
        f"{path}: image of {size} exceeds the cap of {cap:,} pixels (images.MAX_PIXELS); give a smaller picture"
    )


def test_predict_reports_an_image_over_the_cap_in_its_row_and_goes_on(monkeypatch, tmp_path, picture):
    big = huge_png(tmp_path / "big.png", 200, 100)
    monkeypatch.setattr(images, "MAX_PIXELS", 10_000)
    settings = predict.settings(tiny_models.params(), "whole", None)
    rows = list(predict.run(tiny_models.model("irv2"), [big, picture], settings))
    assert [(r["status"], r["message"]) for r in rows] == [
        ("error", "image of 200x100 (20,000 pixels) exceeds the cap of 10,000 pixels (images.MAX_PIXELS); give a "
         "smaller picture"),
        ("ok", None),
    ]  # fmt: skip
