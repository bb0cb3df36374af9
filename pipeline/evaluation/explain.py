"""Grad-CAM: where a model looks when it names an emotion, as heat maps laid over the image.

Both architectures have InceptionResNetV2 in their own (flat) graph, so ``cam_model`` is simply the model's input
mapped to the chosen feature maps and the classifier's input, sharing the trained model's layers and weights.

Targets are found by layer name and output shape, never by index (pipeline.models.backbone.block_outputs): the
deepest of the backbone's block outputs (or stem layers) whose map is at least ``min_size`` wide; in the U-Net also
the last layer of its finest decoder level (``decoder<k>_*``), the map its classifier pools.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import keras
import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure

from pipeline import atomic
from pipeline.data import tfdata
from pipeline.models.backbone import block_outputs

DECODER = re.compile(r"^decoder(\d+)_")


@dataclass(frozen=True)
class Target:
    title: str  # what the map is, for figure titles: "backbone", "encoder", "decoder"
    layer: str
    in_backbone: bool


@dataclass(frozen=True)
class Explanation:
    probabilities: np.ndarray  # N x classes
    explained: np.ndarray  # N: the class each heat map explains
    heatmaps: dict[str, np.ndarray]  # target title -> N x H x W in [0, 1], at the input image's size
    targets: list[Target]


def _width(layer: keras.layers.Layer) -> int | None:
    shape = layer.output.shape
    return min(shape[1], shape[2]) if len(shape) == 4 else None


def targets(model: keras.Model, min_size: int) -> list[Target]:
    """The maps to explain: the backbone's deepest block output at least ``min_size`` wide, and any decoder's finest."""
    wide = [layer.name for layer in block_outputs(model) if (_width(layer) or 0) >= min_size]
    if not wide:
        raise ValueError(f"no backbone feature map is {min_size} px wide or more (lower evaluate.gradcam_min_map_size)")
    levels = [(int(m.group(1)), i) for i, layer in enumerate(model.layers) if (m := DECODER.match(layer.name))]
    if not levels:
        return [Target("backbone", wide[-1], True)]
    decoder = model.layers[max(levels)[1]]
    return [Target("encoder", wide[-1], True), Target("decoder", decoder.name, False)]


def cam_model(model: keras.Model, chosen: list[Target]) -> keras.Model:
    """A model from the image to {"features": the classifier's input, target title: feature map}."""
    outputs = {"features": model.get_layer("emotion").input}
    outputs.update({t.title: model.get_layer(t.layer).output for t in chosen})
    return keras.Model(model.inputs, outputs, name=f"{model.name}_gradcam")


def heatmaps(
    cam: keras.Model, classifier: keras.layers.Dense, images: tf.Tensor, classes: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Grad-CAM of preprocessed ``images`` for ``classes`` (default: each image's predicted class).

    The score is the class logit (the softmax layer's pre-activation, computed from its kernel), as Grad-CAM asks:
    a probability's gradient vanishes when the model is sure.
    """
    with tf.GradientTape() as tape:
        out = cam(images, training=False)
        maps = {k: v for k, v in out.items() if k != "features"}
        logits = tf.matmul(tf.cast(out["features"], tf.float32), classifier.kernel) + classifier.bias
        probabilities = tf.nn.softmax(logits)
        explained = tf.argmax(probabilities, axis=1) if classes is None else tf.constant(classes, tf.int64)
        score = tf.gather(logits, explained, axis=1, batch_dims=1)
    grads = tape.gradient(score, maps)
    size = images.shape[1:3]
    result = {}
    for title, fmap in maps.items():
        weights = tf.reduce_mean(tf.cast(grads[title], tf.float32), axis=(1, 2), keepdims=True)
        cam_map = tf.nn.relu(tf.reduce_sum(weights * tf.cast(fmap, tf.float32), axis=-1)).numpy()
        cam_map = np.stack([cv2.resize(m, (size[1], size[0]), interpolation=cv2.INTER_LINEAR) for m in cam_map])
        # each map scaled to its own peak after upsampling, so the hottest pixel is exactly 1 (none: all 0)
        peak = cam_map.max(axis=(1, 2), keepdims=True)
        result[title] = np.clip(np.divide(cam_map, peak, out=np.zeros_like(cam_map), where=peak > 0), 0.0, 1.0)
    return probabilities.numpy(), explained.numpy(), result


class GradCam:
    """Grad-CAM of one model, its graph built once for any number of calls."""

    def __init__(self, model: keras.Model, min_size: int):
        self.targets = targets(model, min_size)
        self._cam = cam_model(model, self.targets)
        self._classifier = model.get_layer("emotion")

    def __call__(self, images: np.ndarray, classes: np.ndarray | None = None) -> Explanation:
        """Heat maps of uint8 RGB ``images`` at the model's size, for ``classes`` (default: the predicted ones)."""
        probabilities, explained, maps = heatmaps(self._cam, self._classifier, tfdata.preprocess(images), classes)
        return Explanation(probabilities, explained, maps, self.targets)


def grid(path: str | Path, rows: list[list[tuple[str, np.ndarray]]], title: str) -> None:
    """Write a PNG grid of titled RGB panels, one list of (title, image) per row."""
    columns = max(len(r) for r in rows)
    fig = Figure(figsize=(2.2 * columns, 2.35 * len(rows) + 0.4), layout="constrained")
    fig.suptitle(title, fontsize=10)
    axes = fig.subplots(len(rows), columns, squeeze=False)
    for ax_row, row in zip(axes, rows, strict=True):
        for i, ax in enumerate(ax_row):
            ax.set_axis_off()
            if i < len(row):
                ax.imshow(row[i][1])
                ax.set_title(row[i][0], fontsize=7)
    with atomic.target(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
