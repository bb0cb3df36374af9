"""A trained model for serving elsewhere, as `python -m pipeline export` writes it: a SavedModel or a TFLite file.

The exported model is self-contained: it takes RGB pixel values in [0, 255] (float32, N x size x size x 3, the face
already cropped and resized as predict does) and returns the class probabilities only; the backbone's
preprocessing is folded in and the U-Net's reconstruction output left out. Several models (the ensemble,
evaluate.ensemble) become one model on one shared input, returning the mean of their probabilities; evaluate.tta
(the mirrored view) is folded in too, so the export gives what evaluate and predict compute. ``metadata`` is the JSON
written beside it: the classes in output order, the input size, the members and the test-time augmentation.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import keras
import tensorflow as tf

from pipeline import atomic
from pipeline.config import Params
from pipeline.serving import ensemble, inference


class Mirror(keras.layers.Layer):
    """The ``flip`` view of test-time augmentation inside the graph: each image mirrored left to right, as
    inference.view makes it (a layer of its own: a Lambda would hold Python code, which Keras's safe mode refuses)."""

    def call(self, images):
        return keras.ops.flip(images, axis=2)


def serving_model(model: keras.Model | Sequence[keras.Model], tta: Sequence[str] = ()) -> keras.Model:
    """One model, or the mean of several (the ensemble) on one shared input, with the test-time augmentation
    ``tta`` folded in: the same probabilities as ``ensemble.classify`` from raw pixels."""
    models = [model] if isinstance(model, keras.Model) else list(model)
    size = inference.input_size(models[0])
    pixels = keras.Input((size, size, 3), dtype="float32", name="pixels")
    # InceptionResNetV2's preprocess_input ("tf" mode) is exactly x / 127.5 - 1
    scaled = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess")(pixels)
    views = [scaled]
    for name in tta:
        if name != "flip":
            raise ValueError(f"unknown test-time augmentation {name!r}")
        views.append(Mirror(name=name)(scaled))
    probabilities = []
    for m in models:
        for v in views:
            outputs = m(v)
            probabilities.append(outputs["emotion"] if isinstance(outputs, dict) else outputs)
    # the mean of every model over every view: equal counts per model, so the mean of the models' own means
    mean = probabilities[0] if len(probabilities) == 1 else keras.layers.Average(name="mean")(probabilities)
    name = models[0].name if len(models) == 1 else ensemble.NAME
    return keras.Model(pixels, mean, name=f"{name}_serving")


def savedmodel(model: keras.Model | Sequence[keras.Model], out: Path, tta: Sequence[str] = ()) -> None:
    with atomic.directory(out) as tmp:
        serving_model(model, tta).export(str(tmp), format="tf_saved_model", verbose=False)


def tflite(model: keras.Model | Sequence[keras.Model], out: Path, tta: Sequence[str] = ()) -> None:
    # via a SavedModel: the converter's supported route for Keras 3 models
    work = Path(tempfile.mkdtemp(prefix="export-"))
    try:
        serving_model(model, tta).export(str(work / "savedmodel"), format="tf_saved_model", verbose=False)
        tflite_from_savedmodel(work / "savedmodel", out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def tflite_from_savedmodel(saved: Path, out: Path) -> None:
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    atomic.write_bytes(out, converter.convert())


def metadata(params: Params, name: str, fmt: str) -> dict:
    return {
        "model": name,
        "format": fmt,
        "classes": params.classes,
        "input": {
            "shape": [None, params.image_size, params.image_size, 3],
            "dtype": "float32",
            "range": [0, 255],
            "color": "RGB",
        },
        # what the model averages inside: the ensemble's members, and the test-time augmentation (evaluate.tta)
        "members": params.evaluate.ensemble if name == ensemble.NAME else [name],
        "tta": params.evaluate.tta,
        "face_crop": params.augment.face_crop,
        "face_margin": params.augment.face_margin,
    }
