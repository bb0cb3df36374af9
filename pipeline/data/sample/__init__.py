"""Procedural sample dataset: cartoon faces showing six emotions, in the Kaggle "Autistic Children Emotions" layout.

The pipeline has to run end to end offline and in CI without the real photographs, so this module draws stand-ins.
The emotion is carried only by facial geometry (brows, eyelids, mouth). Identity (skin, hair, eyes, clothes), pose,
background, lighting and camera noise come from one distribution shared by every class, so a model cannot score by
colour, brightness, position or file size. Each image has its own numpy Generator keyed by (seed, split, class,
index): a seed gives byte-identical files whatever the drawing order, and the contact sheet shows the first Train faces.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np

from pipeline import atomic
from pipeline.config import UserError
from pipeline.data.images import write_png
from pipeline.data.sample.drawing import draw_face

FOLDERS = {
    "joy": "joy",
    "sadness": "sadness",
    "fear": "fear",
    "anger": "anger",
    "surprise": "surprise",
    "natural": "Natural",
}
SPLITS = {"train": "Train", "test": "Test"}
JPEG_QUALITY = 90
_NAME_STREAM = 2  # seed-sequence tag of the file-name shuffle; images use tag 1


class OutputExists(UserError, ValueError):
    """The output folder already holds files, which generating would mix with (or replace by) the sample data."""


def _image_rng(seed: int, split: str, emotion: str, i: int) -> np.random.Generator:
    """The one Generator of an image: depends only on its key, never on what was drawn before it."""
    return np.random.default_rng([seed, 1, list(SPLITS).index(split), list(FOLDERS).index(emotion), i])


def _jpeg(bgr: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG image")
    return data.tobytes()


def generate(out_dir: Path, counts: dict[str, dict[str, int]], seed: int, size: int) -> dict[str, int]:
    """Write ``counts`` faces per split and class as JPEGs in the Kaggle layout; returns the files written per split.

    counts is like {"train": {"joy": 140, ...}, "test": {...}}. Files are named img_NNNN.jpg with numbers shuffled
    over the whole dataset, so neither name nor order gives a label away. The folder appears whole or not at all.
    """
    out_dir = Path(out_dir)
    for split, per_class in counts.items():
        for name, n in per_class.items():
            if split not in SPLITS or name not in FOLDERS or int(n) < 0:
                raise ValueError(
                    f"counts[{split!r}][{name!r}] = {n!r}: need a split of {list(SPLITS)}, a class of "
                    f"{list(FOLDERS)} and a count >= 0"
                )
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise OutputExists(
            f"{out_dir} already exists and is not empty; sample data is written only to a new or empty folder"
        )
    jobs = [
        (split, name, i)
        for split in SPLITS
        if split in counts
        for name in FOLDERS
        for i in range(int(counts[split].get(name, 0)))
    ]
    numbers = np.random.default_rng([seed, _NAME_STREAM]).permutation(len(jobs))
    with atomic.directory(out_dir) as tmp:
        for split, name in itertools.product(counts, FOLDERS):  # every class folder, even one left empty
            (tmp / SPLITS[split] / FOLDERS[name]).mkdir(parents=True)
        for (split, name, i), number in zip(jobs, numbers, strict=True):
            jpeg = _jpeg(draw_face(name, _image_rng(seed, split, name, i), size))
            (tmp / SPLITS[split] / FOLDERS[name] / f"img_{number:04d}.jpg").write_bytes(jpeg)
    return {split: sum(int(n) for n in counts[split].values()) for split in counts}


def preview(out_png: Path, seed: int, size: int, per_class: int = 6) -> None:
    """Write a PNG contact sheet: one labelled row per emotion, showing the first ``per_class`` training faces."""
    pad, label_w = 4, 110
    sheet = np.full((len(FOLDERS) * (size + pad) + pad, label_w + per_class * (size + pad) + pad, 3), 255, np.uint8)
    for row, name in enumerate(FOLDERS):
        y = pad + row * (size + pad)
        cv2.putText(sheet, name, (pad, y + size // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
        for i in range(per_class):
            x = label_w + i * (size + pad)
            sheet[y : y + size, x : x + size] = draw_face(name, _image_rng(seed, "train", name, i), size)
    write_png(out_png, cv2.cvtColor(sheet, cv2.COLOR_BGR2RGB))  # draw_face paints in OpenCV's BGR order
