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
from pipeline.models.backbone import backbone_layers
from pipeline.serving import ensemble, inference


class Views(keras.layers.Layer):
    """The test-time views of a batch stacked on the batch axis: the images, then for each ``tta`` name its view
    (``flip``: each image mirrored left to right, as inference.view makes it). Each model then runs once on all views,
    so the exported graph holds one copy of it instead of one per view: the flip ensemble exports and loads in about
    three quarters of the time. A layer of its own: a Lambda would hold Python code, which Keras's safe mode refuses."""

    def __init__(self, tta: Sequence[str], **kwargs):
        super().__init__(**kwargs)
        for name in tta:
            if name != "flip":
                raise ValueError(f"unknown test-time augmentation {name!r}")
        self.tta = list(tta)

    def call(self, images):
        return keras.ops.concatenate([images] + [keras.ops.flip(images, axis=2) for _ in self.tta], axis=0)

    def compute_output_shape(self, input_shape):
        return (None, *input_shape[1:])


class ViewMean(keras.layers.Layer):
    """The mean over the views of the probabilities of stacked views (views * N x classes, as Views stacks them):
    N x classes."""

    def __init__(self, views: int, **kwargs):
        super().__init__(**kwargs)
        self.views = views

    def call(self, probabilities):
        classes = probabilities.shape[-1]
        return keras.ops.mean(keras.ops.reshape(probabilities, (self.views, -1, classes)), axis=0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])


def serving_model(model: keras.Model | Sequence[keras.Model], tta: Sequence[str] = ()) -> keras.Model:
    """One model, or the mean of several (the ensemble) on one shared input, with the test-time augmentation
    ``tta`` folded in: the same probabilities as ``ensemble.classify`` from raw pixels."""
    models = [model] if isinstance(model, keras.Model) else list(model)
    size = inference.input_size(models[0])
    pixels = keras.Input((size, size, 3), dtype="float32", name="pixels")
    # InceptionResNetV2's preprocess_input ("tf" mode) is exactly x / 127.5 - 1
    scaled = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess")(pixels)
    views = Views(tta, name="views")(scaled) if tta else scaled
    probabilities = []
    for m in models:
        outputs = m(views)
        emotion = outputs["emotion"] if isinstance(outputs, dict) else outputs
        probabilities.append(ViewMean(1 + len(tta), name=f"{m.name}_view_mean")(emotion) if tta else emotion)
    # the mean of the models' means over the views: equal view counts, so the mean over every model and view
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


def backbone_weights(model: keras.Model, out: Path) -> None:
    """The weights of ``model``'s InceptionResNetV2 layers (head and decoder left out) as the file that
    ``keras.applications.InceptionResNetV2(weights=...)`` loads: ``train.<model>.weights`` of another training, of
    either architecture and at any image size (no backbone weight depends on the size). ``out`` ends with
    ``.weights.h5``."""
    base = keras.Model(model.inputs[0], backbone_layers(model)[-1].output, name="inception_resnet_v2")
    with atomic.target(out) as tmp:
        base.save_weights(tmp)


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
