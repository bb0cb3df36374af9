"""Pictures that decode but show nothing usable, given to every reader: one rule (pipeline/data/shape.py) for
validate, augment and evaluate (and predict) alike, so a picture validate refuses is refused wherever it is read."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from pipeline.data import duplicates, images, shape
from pipeline.data import manifest as manifest_lib
from pipeline.evaluation import scoring
from tests import workspace

RULE = shape.Rule(min_width=32, min_height=32, max_aspect=4.0)


def noise(height: int, width: int, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (height, width, channels), np.uint8)


def transparent(height: int, width: int) -> np.ndarray:
    pixels = noise(height, width, 4)
    pixels[..., 3] = 0  # another picture hides behind a fully transparent one
    return pixels


def one_pixel_shows(height: int, width: int) -> np.ndarray:
    pixels = transparent(height, width)
    pixels[height // 2, width // 2, 3] = 255
    return pixels


# pictures: (case, what is written to x.png, the problem after "<path>: "; None: accepted)
PICTURES = [
    ("100000x1 px", np.zeros((1, 100_000, 3), np.uint8), "100000x1 px, lower than 32 px"),
    ("40x100000 px", noise(100_000, 40), "40x100000 px, an aspect ratio of 2500.0:1, past validate.max_aspect 4"),
    ("32x129 px", noise(129, 32), "32x129 px, an aspect ratio of 4.0:1, past validate.max_aspect 4 (it would be"),
    ("32x128 px (4:1)", noise(128, 32), None),
    ("fully transparent RGBA", transparent(80, 80), "a blank picture: fully transparent (nothing shows; its hidden"),
    ("one pixel shows", one_pixel_shows(80, 80), None),
    ("one colour", np.full((80, 80, 3), (20, 200, 90), np.uint8), "a blank picture: one colour throughout"),
    ("grey, one value", np.full((80, 80), 255, np.uint8), "a blank picture: one colour throughout"),
    ("noise", noise(80, 80), None),
]  # fmt: skip


@pytest.mark.parametrize(("pixels", "problem"), [c[1:] for c in PICTURES], ids=[c[0] for c in PICTURES])
def test_one_rule_for_every_reader(tmp_path, pixels, problem):
    path = tmp_path / "x.png"
    assert cv2.imwrite(str(path), pixels)
    if problem is None:
        assert shape.read(path, tmp_path, RULE).shape[:2] == pixels.shape[:2]
        return
    with pytest.raises(images.ImageReadError) as refused:
        shape.read(path, tmp_path, RULE)
    assert str(refused.value).startswith(f"{path}: {problem}")


def test_evaluate_refuses_a_test_picture_that_breaks_the_rule(params, tiny_raw, tmp_path):
    """The raw folder changed after validate: evaluate does not score a transparent picture by its hidden colours."""
    frame = workspace_manifest(params, tiny_raw)
    victim = tiny_raw / frame.loc[frame["split"] == "test", "path"].sort_values().iloc[0]
    victim.unlink()
    assert cv2.imwrite(str(victim.with_suffix(".png")), transparent(80, 80))
    victim.with_suffix(".png").rename(victim)  # a PNG under the .jpg name the manifest lists
    with pytest.raises(images.ImageReadError, match="a blank picture: fully transparent"):
        scoring.test_split(frame, tiny_raw, params)


def workspace_manifest(params, raw: Path) -> pd.DataFrame:
    return manifest_lib.build(
        raw, params.classes, params.class_aliases, params.split_folders, duplicates.rule(params.validate)
    )


def test_the_sample_data_passes_the_rule(tiny_raw, params):
    """Every picture of the sample generator (the embedded dataset is 835 of them, 112 px squares) passes."""
    picture = shape.rule(params.validate)
    assert picture.max_aspect == 4.0
    for path in sorted(tiny_raw.rglob("*.jpg")):
        shape.read(path, tiny_raw, picture)
    assert workspace.tiny_params().validate.max_aspect == picture.max_aspect
