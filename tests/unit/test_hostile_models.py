"""Hostile inputs to predict, export and sample-data: each is refused by one line naming the file and the fix, with
exit status 1 and no traceback, before any real work. Tiny models only; nothing here trains or converts a model."""

from __future__ import annotations

import json
import os
import struct
import zipfile
import zlib
from collections.abc import Callable
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
    write_png(path, np.random.default_rng(0).integers(0, 256, (80, 80, 3), dtype=np.uint8))  # one colour is blank
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


def a_picture(tmp_path: Path) -> Path:
    write_png(tmp_path / "x.png", np.random.default_rng(1).integers(0, 256, (40, 40, 3), dtype=np.uint8))
    return tmp_path / "x.png"


def a_picture_in_photos(tmp_path: Path) -> Path:
    (tmp_path / "photos").mkdir()
    return a_picture(tmp_path / "photos")


def a_model(tmp_path: Path) -> Path:
    (tmp_path / "model.keras").write_bytes(b"never loaded: the refusal comes first")
    return tmp_path / "model.keras"


def annotated_beside(name: str) -> Callable[[Path], Path]:
    """A folder holding x.png and ``name``, which x.png's annotated copy (or a clip's frame) would be called."""

    def make(tmp_path: Path) -> Path:
        folder = a_picture_in_photos(tmp_path).parent
        (folder / name).write_bytes(b"an input of its own")
        return folder

    return make


def a_model_named_x_png_png(tmp_path: Path) -> Path:
    """x.png beside a model file that x.png's annotated copy would replace."""
    a_picture(tmp_path)
    a_model(tmp_path).rename(tmp_path / "x.png.png")
    return tmp_path


PREDICT = ["predict", "{picture}", "--model", "irv2", "--model-file", "{model}"]
PREDICT_IN = ["predict", "{tmp}/photos", "--model", "irv2", "--model-file", "{model}"]

# command-line arguments: (case, command and its options up to the hostile one, the option, what it names, message)
ARGUMENTS = [
    ("predict --out folder", ["predict", "{picture}", "--model", "irv2", "--model-file", "{model}"], "--out", a_folder,
     "--out {path}: is a folder; give the path of the file to write the rows to"),
    ("predict --annotate file", ["predict", "{picture}", "--model", "irv2", "--model-file", "{model}"], "--annotate",
     a_file, "--annotate {path}: is a file; give a folder (created if missing) for the annotated copies"),
    ("sample-data --out non-empty", ["sample-data"], "--out", a_full_folder,
     "{path} already exists and is not empty; sample data is written only to a new or empty folder"),
    ("predict x.png --out x.png", ["predict", "{tmp}/x.png", *PREDICT[2:]], "--out", a_picture,
     "--out {path}: would overwrite the input {path}; give another file for the rows"),
    ("predict photos/ --out photos/x.png", PREDICT_IN, "--out", a_picture_in_photos,
     "--out {path}: would overwrite the input {path}; give another file for the rows"),
    ("predict --out the model file", PREDICT[:-1] + ["{tmp}/model.keras"], "--out", a_model,
     "--out {path}: would overwrite the model file {path}; give another file for the rows"),
    ("predict photos/ --annotate photos/ (x.png.png)", PREDICT_IN, "--annotate", annotated_beside("x.png.png"),
     "--annotate {path}: the annotated copy of {path}/x.png would overwrite the input {path}/x.png.png; give "
     "another folder"),
    ("predict --annotate over a Grad-CAM strip's name", PREDICT_IN, "--annotate",
     annotated_beside("x.png_face0_gradcam.png"), "--annotate {path}: the annotated copy of {path}/x.png would "
     "overwrite the input {path}/x.png_face0_gradcam.png; give another folder"),
    ("predict x.png --annotate . over the model", ["predict", "{tmp}/x.png", "--model", "irv2", "--model-file",
     "{tmp}/x.png.png"], "--annotate", a_model_named_x_png_png,
     "--annotate {path}: the annotated copy of {path}/x.png would overwrite the model file {path}/x.png.png; give "
     "another folder"),
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
    argv = [a.format(picture=picture, model=model_file, tmp=tmp_path) for a in argv]
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


@pytest.mark.parametrize(
    "url", ["http://example.com/face.jpg", "https://example.com/face.jpg", "ftp://host/face.jpg", "s3://b/face.jpg"]
)
def test_predict_refuses_a_url_before_any_work(capsys, monkeypatch, params_file, model_file, picture, url):
    monkeypatch.setattr(keras.models, "load_model", lambda *a, **k: pytest.fail("loaded the model"))
    argv = ["--params", str(params_file), "predict", url, *PREDICT[1:]]
    line = refused(capsys, [a.format(picture=picture, model=model_file) for a in argv])
    assert line == f"error: {url} is a URL: download it first (predict reads local files)"


def link(path: Path, target: str | Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)
    return path


def folder_with(make: Callable[[Path], object]) -> Callable[[Path], Path]:
    def made(tmp_path: Path) -> Path:
        make(tmp_path / "photos")
        return tmp_path / "photos"

    return made


def transparent(path: Path) -> Path:
    """A fully transparent RGBA PNG whose hidden colours are noise (another picture, for all a viewer knows)."""
    bgra = np.random.default_rng(3).integers(0, 256, (64, 64, 4), dtype=np.uint8)
    bgra[..., 3] = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), bgra)
    return path


def picture_of(height: int, width: int) -> Callable[[Path], Path]:
    def make(tmp_path: Path) -> Path:
        write_png(tmp_path / "odd.png", np.random.default_rng(4).integers(0, 256, (height, width, 3), dtype=np.uint8))
        return tmp_path / "odd.png"

    return make


OUTSIDE = "a symbolic link to /etc/passwd, outside {folder}: never opened; put the image itself in the folder"
# inputs to predict: (case, how to make the input under tmp_path, the file its row names, that row's message); each
# is a row of status error and no label, the run goes on to the next input, and predict exits 3
INPUTS = [
    ("photos/passwd.jpg -> /etc/passwd", folder_with(lambda d: link(d / "passwd.jpg", "/etc/passwd")),
     "photos/passwd.jpg", OUTSIDE.format(folder="{tmp}/photos")),
    ("passwd.jpg -> /etc/passwd, given", lambda t: link(t / "passwd.jpg", "/etc/passwd"), "passwd.jpg",
     OUTSIDE.format(folder="{tmp}")),
    ("photos/etc -> /etc (a folder)", folder_with(lambda d: link(d / "etc", "/etc")), "photos/etc",
     "a symbolic link to /etc, outside {tmp}/photos: never opened; put the image itself in the folder"),
    ("a.jpg -> ../b.jpg, given", lambda t: link(t / "in" / "a.jpg", picture_of(40, 40)(t)), "in/a.jpg",
     "a symbolic link to {tmp}/odd.png, outside {tmp}/in: never opened; put the image itself in the folder"),
    ("photos/fifo.jpg (a FIFO)", folder_with(lambda d: d.mkdir() or os.mkfifo(d / "fifo.jpg")), "photos/fifo.jpg",
     "not a regular file (FIFO), never opened: remove it from the raw data"),
    ("100000x1 px", picture_of(1, 100_000), "odd.png", "100000x1 px, lower than 32 px"),
    ("40x200 px", picture_of(200, 40), "odd.png", "40x200 px, an aspect ratio of 5.0:1, past validate.max_aspect 4 "
     "(it would be squashed to a square); crop it to the face"),
    ("fully transparent PNG", lambda t: transparent(t / "clear.png"), "clear.png",
     "a blank picture: fully transparent (nothing shows; its hidden colours are not read)"),
    ("one colour", lambda t: write_png(t / "grey.png", np.full((64, 64, 3), 128, np.uint8)) or t / "grey.png",
     "grey.png", "a blank picture: one colour throughout"),
    ("0-byte video", lambda t: (t / "clip.mp4").write_bytes(b"") or t / "clip.mp4", "clip.mp4",
     "not a video OpenCV can open"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "file", "message"), [c[1:] for c in INPUTS], ids=[c[0] for c in INPUTS])
def test_a_hostile_input_is_a_refused_row_and_the_run_goes_on(tmp_path, picture, make, file, message):
    path = make(tmp_path)
    settings = predict.settings(tiny_models.params(), "whole", None)
    rows = list(predict.run(tiny_models.model("irv2"), [path, picture], settings))
    refused_row = next(r for r in rows if r["file"] == str(tmp_path / file) or r["file"] == file)
    assert (refused_row["status"], refused_row["label"]) == ("error", None)
    assert refused_row["message"] == message.format(tmp=tmp_path)
    assert rows[-1]["file"] == str(picture) and rows[-1]["status"] == "ok"
    assert "root:" not in json.dumps(rows)  # /etc/passwd's first bytes are never echoed


def exit_status(argv: list[str]) -> int:
    """What `python -m pipeline` exits with (predict raises SystemExit for a run in which an input failed)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


@pytest.mark.parametrize(
    ("inputs", "code", "counts"),
    [
        (lambda t, p: [p], 0, "inputs: 1 classified, 0 failed"),
        (lambda t, p: [p, link(t / "x.jpg", "/etc/passwd"), t / "missing.jpg"], 3, "inputs: 1 classified, 2 failed"),
    ],
    ids=["all classified: 0", "any failed: 3"],
)
def test_predict_exit_status_says_whether_any_input_failed(
    capsys, tmp_path, params_file, model_file, picture, inputs, code, counts
):
    paths = [str(p) for p in inputs(tmp_path, picture)]
    model = ["--model", "irv2", "--model-file", str(model_file), "--faces", "whole"]
    assert (
        exit_status(["--params", str(params_file), "predict", *paths, "--out", str(tmp_path / "r.csv"), *model]) == code
    )
    summary = capsys.readouterr().err.strip().splitlines()[-1]
    assert summary.startswith("predict irv2 (whole): 1 faces classified") and summary.endswith(counts)
    assert (tmp_path / "r.csv").read_text().count("\n") == 1 + len(paths)  # the header, and a row per input
