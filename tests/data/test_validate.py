"""Data tests: the validation stage on good data and on each kind of bad input.

Each bad input is either accepted (and normalised when read) or rejected with a message naming the file and the
problem; in every case the raw folder is byte-for-byte unchanged afterwards.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from pipeline.__main__ import main as cli
from pipeline.data.images import read_rgb
from pipeline.stages import validate
from tests.workspace import tree_digest


def _run(params, raw: Path, out: Path):
    before = tree_digest(raw)
    try:
        return validate.run(params, raw, out / "manifest.csv", out / "metrics.json", out / "report.html"), None
    except validate.ValidationFailed as exc:
        return None, str(exc)
    finally:
        assert tree_digest(raw) == before, "validation wrote to the raw data"


def _noise(height: int, width: int, alpha: int | None = None) -> np.ndarray:
    """A picture of noise (BGR), or with ``alpha`` a BGRA one whose every pixel has that alpha."""
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), np.uint8)
    return pixels if alpha is None else np.dstack([pixels, np.full((height, width), alpha, np.uint8)])


def _first(raw: Path, rel: str) -> Path:
    return sorted((raw / rel).glob("*.jpg"))[0]


def test_good_data_passes_and_writes_manifest(params, tiny_raw, tmp_path):
    summary, error = _run(params, tiny_raw, tmp_path)
    assert error is None
    assert summary["images"] == {"train": 18, "test": 6}
    assert summary["expectations"]["failed"] == 0 and summary["expectations"]["evaluated"] == 10
    manifest = pd.read_csv(tmp_path / "manifest.csv")
    assert set(manifest["label"]) == set(params.classes)
    assert manifest.loc[manifest["folder"] == "Train/Natural", "label"].eq("natural").all()
    assert {"sha256", "phash", "brightness", "width", "height", "channels", "format"} <= set(manifest.columns)
    assert "all expectations hold" in (tmp_path / "report.html").read_text()


@pytest.mark.parametrize(
    ("make_bad", "expected"),
    [
        (
            lambda raw: _first(raw, "Train/joy").write_bytes(_first(raw, "Train/joy").read_bytes()[:300]),
            "corrupt or truncated image",
        ),
        (lambda raw: (raw / "Train/joy/empty.jpg").write_bytes(b""), "zero-byte file"),
        (
            lambda raw: (raw / "Train/joy/notes.jpg").write_text("hello, this is not a picture\n"),
            "not an image: it holds text",
        ),
        (lambda raw: shutil.copytree(raw / "Train/joy", raw / "Train/bored"), "folder 'Train/bored' matches no class"),
        (
            lambda raw: [p.unlink() for p in (raw / "Test/fear").iterdir()],
            "class 'fear' has 0 image(s) in test, fewer than the minimum 1",
        ),
        (
            lambda raw: cv2.imwrite(str(raw / "Train/anger/tiny.png"), np.full((10, 10, 3), 128, np.uint8)),
            "10x10 px, narrower than 32 px",
        ),
        (lambda raw: shutil.copy(_first(raw, "Train/sadness"), raw / "Test/sadness/copy.jpg"), "identical file"),
        (lambda raw: (raw / "Train/README.txt").write_text("about"), "stray file in 'Train'"),
        (lambda raw: (raw / "Train/joy/list.csv").write_text("a,b"), "extension '.csv' is not one of"),
        (lambda raw: cv2.imwrite(str(raw / "Train/joy/strip.png"), _noise(1000, 40)), "40x1000 px, an aspect ratio"),
        (lambda raw: cv2.imwrite(str(raw / "Train/joy/clear.png"), _noise(80, 80, alpha=0)), "fully transparent"),
        (lambda raw: cv2.imwrite(str(raw / "Train/joy/grey.png"), np.full((80, 80), 90, np.uint8)), "one colour"),
    ],
    ids=[
        "corrupt-jpeg",
        "zero-byte",
        "text-as-jpg",
        "unknown-class",
        "empty-class",
        "10x10",
        "train-test-leak",
        "stray-file-in-split",
        "stray-extension",
        "40x1000-stripe",
        "transparent-rgba",
        "one-colour",
    ],
)
def test_bad_input_is_rejected_naming_file_and_problem(params, tiny_raw, tmp_path, make_bad, expected):
    make_bad(tiny_raw)
    summary, error = _run(params, tiny_raw, tmp_path)
    assert summary is None, "bad data passed validation"
    assert expected in error
    assert not (tmp_path / "manifest.csv").exists(), "a manifest was written for bad data"
    assert "FAILED" in (tmp_path / "report.html").read_text()


def test_the_report_shows_markup_in_file_names_and_messages_as_text(params, tiny_raw, tmp_path):
    # a file whose name and content are markup: the report shows the name escaped, never the content
    (tiny_raw / "Train/joy/<script>.jpg").write_text("<script>alert(1)</script>")
    _, error = _run(params, tiny_raw, tmp_path)
    assert "Train/joy/<script>.jpg: not an image: it holds text (25 bytes)" in error
    assert "alert" not in error  # what the file is, never what it holds
    report = (tmp_path / "report.html").read_text()
    assert "Train/joy/&lt;script&gt;.jpg: not an image: it holds text (25 bytes)" in report
    assert "<script" not in report and "alert" not in report


def test_near_duplicate_across_splits_is_a_leak(params, tiny_raw, tmp_path):
    source = _first(tiny_raw, "Train/surprise")
    image = cv2.imread(str(source))
    brighter = cv2.convertScaleAbs(cv2.resize(image, None, fx=1.5, fy=1.5), alpha=1.0, beta=8)
    cv2.imwrite(str(tiny_raw / "Test/surprise/resized.jpg"), brighter, [cv2.IMWRITE_JPEG_QUALITY, 70])
    _, error = _run(params, tiny_raw, tmp_path)
    assert "Test/surprise/resized.jpg: same image as Train/surprise/" in error
    assert "near-duplicate" in error


def test_leak_message_names_both_files(params, tiny_raw, tmp_path):
    source = _first(tiny_raw, "Train/joy")
    shutil.copy(source, tiny_raw / "Test/joy/dup.jpg")
    _, error = _run(params, tiny_raw, tmp_path)
    assert f"Test/joy/dup.jpg: same image as Train/joy/{source.name}" in error
    assert f"Train/joy/{source.name}: same image as Test/joy/dup.jpg" in error


def _write_variants(raw: Path) -> dict[str, Path]:
    rgb = read_rgb(_first(raw, "Train/joy"))
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    # Each variant is a new picture (flipped or shifted) so that it does not count as a leak or duplicate.
    variants = {
        "gray": (raw / "Train/joy/gray.png", cv2.cvtColor(cv2.flip(bgr, 1), cv2.COLOR_BGR2GRAY)),
        "rgba": (raw / "Train/joy/alpha.png", cv2.cvtColor(cv2.flip(bgr, 0), cv2.COLOR_BGR2BGRA)),
        "16bit": (raw / "Train/joy/deep.png", cv2.flip(bgr, -1).astype(np.uint16) * 257),
        "unicode": (raw / "Train/joy/smile été Ünï 01.jpg", np.roll(bgr, 9, axis=1)),
    }
    for path, array in variants.values():
        ok, buf = cv2.imencode(path.suffix, array)
        assert ok
        path.write_bytes(buf.tobytes())  # cv2.imwrite cannot take non-ASCII paths on every platform
    return {key: path for key, (path, _) in variants.items()}


def test_grayscale_rgba_16bit_and_unicode_names_are_accepted_and_normalised(params, tiny_raw, tmp_path):
    paths = _write_variants(tiny_raw)
    summary, error = _run(params, tiny_raw, tmp_path)
    assert error is None, error
    manifest = pd.read_csv(tmp_path / "manifest.csv").set_index("path")
    rel = {key: path.relative_to(tiny_raw).as_posix() for key, path in paths.items()}
    assert manifest.loc[rel["gray"], "channels"] == 1
    assert manifest.loc[rel["rgba"], "channels"] == 4
    assert manifest.loc[rel["16bit"], "bit_depth"] == 16
    assert manifest.loc[rel["unicode"], "label"] == "joy"
    for path in paths.values():
        image = read_rgb(path)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


def test_folder_aliases_are_case_insensitive(params, tiny_raw, tmp_path):
    (tiny_raw / "Train/joy").rename(tiny_raw / "Train/HAPPY")
    (tiny_raw / "Train/Natural").rename(tiny_raw / "Train/neutral")
    (tiny_raw / "Test").rename(tiny_raw / "test")
    summary, error = _run(params, tiny_raw, tmp_path)
    assert error is None, error
    assert summary["per_class"]["train"]["joy"] == 3 and summary["per_class"]["train"]["natural"] == 3


def test_cli_reports_failures_without_traceback(tiny_raw, tmp_path, capsys):
    (tiny_raw / "Train/joy/empty.jpg").write_bytes(b"")
    code = cli(
        [
            "--params",
            "params.yaml",
            "validate",
            "--raw",
            str(tiny_raw),
            "--manifest",
            str(tmp_path / "m.csv"),
            "--metrics",
            str(tmp_path / "v.json"),
            "--report",
            str(tmp_path / "r.html"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: raw data in")
    assert "Train/joy/empty.jpg: zero-byte file" in err
    assert "Traceback" not in err


def test_missing_raw_folder_is_a_clear_error(params, tmp_path):
    with pytest.raises(FileNotFoundError, match="raw data folder not found"):
        validate.run(params, tmp_path / "nope", tmp_path / "m.csv", tmp_path / "v.json", tmp_path / "r.html")
