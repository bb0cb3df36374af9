"""Loading a trained model and classifying images: the one path that evaluate, predict, export and benchmarks share.

Images go in as 8-bit RGB at the model's size, exactly as ``faces.prepare`` makes them for training (the augment
stage writes those arrays as PNGs, and tf.data applies the backbone's preprocessing); probabilities come out.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from pipeline.data import tfdata


class ModelError(ValueError):
    """A trained model that does not fit the params (input size, classes)."""


def load_model(path: str | Path) -> keras.Model:
    """A model saved by the train stage, without its optimizer state (inference needs none)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no trained model here (run `dvc repro train` or give --model-file)")
    return keras.models.load_model(path, compile=False)


def input_size(model: keras.Model) -> int:
    return int(model.inputs[0].shape[1])


def check(model: keras.Model, image_size: int, classes: list[str]) -> None:
    """Refuse a model trained for another image size or class list than params.yaml describes."""
    if input_size(model) != image_size:
        raise ModelError(f"the model takes {input_size(model)} px images, params.yaml image_size is {image_size}")
    outputs = int(model.get_layer("emotion").output.shape[-1])
    if outputs != len(classes):
        raise ModelError(f"the model has {outputs} classes, params.yaml lists {len(classes)}: {classes}")


def emotion(outputs) -> np.ndarray:
    """The class probabilities of a model's outputs: the U-Net also returns its reconstruction."""
    if isinstance(outputs, dict):
        outputs = outputs["emotion"]
    return np.asarray(keras.ops.convert_to_numpy(outputs), dtype=np.float32)


def classify(model: keras.Model, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Class probabilities (N x classes) of uint8 RGB images (N x size x size x 3) at the model's input size."""
    size = input_size(model)
    if images.ndim != 4 or images.shape[1:] != (size, size, 3):
        raise ValueError(f"expected images of shape (N, {size}, {size}, 3), got {images.shape}")
    if not len(images):
        return np.zeros((0, int(model.get_layer("emotion").output.shape[-1])), np.float32)
    out = []
    for i in range(0, len(images), batch_size):
        batch = images[i : i + batch_size]
        # one batch shape for every call: each new shape would trace the whole network again (seconds on a CPU)
        padded = np.concatenate([batch, np.zeros((batch_size - len(batch), *batch.shape[1:]), batch.dtype)])
        out.append(emotion(model.predict_on_batch(tfdata.preprocess(padded)))[: len(batch)])
    return np.concatenate(out)
