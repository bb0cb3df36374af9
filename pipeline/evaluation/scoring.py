"""A model's figures on the Test split, each image seen exactly as training saw it.

The evaluate stage scores this workspace's models with it, and the promotion gate re-scores the registry's champions
with it, so a challenger and its champions are judged by the same code on the same images.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pandas as pd
from sklearn.metrics import log_loss

from pipeline.config import Params
from pipeline.data import faces, shape
from pipeline.serving import inference
from pipeline.training.metrics import classification_metrics


def test_split(manifest: pd.DataFrame, raw: Path, params: Params) -> tuple[pd.DataFrame, np.ndarray, int]:
    """The Test rows (decodable, labelled), their images as training saw them, and how many had no face found."""
    rows = manifest[(manifest["split"] == "test") & manifest["error"].isna() & manifest["label"].notna()]
    rows = rows.sort_values("path").reset_index(drop=True)
    if rows.empty:
        raise ValueError("the manifest has no usable Test images")
    detector = faces.FaceDetector() if params.augment.face_crop else None
    images, found = [], []
    picture = shape.rule(params.validate)
    for path in rows["path"]:
        rgb = shape.read(raw / path, raw, picture)
        image, face = faces.prepare(rgb, params.image_size, detector, params.augment.face_margin)
        images.append(image)
        found.append(face)
    return rows, np.stack(images), sum(f is False for f in found)


def labels(rows: pd.DataFrame, params: Params) -> np.ndarray:
    """The class index of each row, in params' class order."""
    return rows["label"].map(params.class_index).to_numpy()


def probabilities(model: keras.Model, images: np.ndarray, params: Params) -> np.ndarray:
    """The model's class probabilities of prepared images, with the test-time augmentation of params (evaluate.tta);
    a model trained for other params is refused."""
    inference.check(model, params.image_size, params.classes)
    return inference.classify(model, images, params.evaluate.batch_size, params.evaluate.tta)


def score(labels: np.ndarray, probabilities: np.ndarray, classes: list[str]) -> dict:
    figures = classification_metrics(labels, probabilities, classes)
    ids = list(range(len(classes)))
    # the log loss moves with any change of the weights, where accuracy on a small split often does not
    figures["log_loss"] = round(float(log_loss(labels, probabilities, labels=ids)), 4)
    figures["test_images"] = len(labels)
    return figures
