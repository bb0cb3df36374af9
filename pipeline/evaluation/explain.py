"""Grad-CAM: where a model looks when it names an emotion, as heat maps laid over the image.

Both architectures keep InceptionResNetV2 as a nested keras.Model called "backbone". A feature map inside it cannot
be reached from the outer model's input, so ``cam_model`` joins two graphs: the backbone re-exposed with the target
map as an extra output, then the outer graph from the backbone's outputs on (Keras 3 builds a model from intermediate
tensors by cloning those nodes). Layers and weights are shared with the trained model, nothing is copied.

Targets are found by graph shape and layer name, never by index: in the backbone, the last "trunk" layer (one that
every path from the input to the output passes through: a block's output, not one of its branches) whose map is at
least ``min_size`` wide; in the U-Net also the last layer of its finest decoder level (``decoder<k>_*``), the map its
classifier pools.
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


def _producers(layer: keras.layers.Layer, names: set[str]) -> set[str]:
    # Keras keeps the graph on each layer's inbound nodes; only nodes inside this model count
    return {
        t._keras_history.operation.name
        for node in layer._inbound_nodes
        for t in node.input_tensors
        if t._keras_history.operation.name in names
    }


def trunk(model: keras.Model) -> list[str]:
    """Layers that every path from the input to the model's deepest (last) output passes through, in order.

    Walking the layers in topological order, a layer is on the trunk when, just after it, every edge from a visited
    layer to an unvisited one starts at it: residual branches and parallel towers are open edges that exclude their
    inner layers, while the blocks' outputs (where branches join) remain.
    """
    order = [layer.name for layer in model.layers]
    position = {name: i for i, name in enumerate(order)}
    names = set(order)
    last_use = {name: position[name] for name in order}  # the last consumer of each layer's output
    for layer in model.layers:
        for source in _producers(layer, names):
            last_use[source] = max(last_use[source], position[layer.name])
    last_use[model.outputs[-1]._keras_history.operation.name] = len(order)  # the output feeds what comes after
    on_trunk = []
    for i, name in enumerate(order):
        open_edges = [src for src in order[: i + 1] if last_use[src] > i]
        if open_edges == [name]:
            on_trunk.append(name)
    return on_trunk


def _width(layer: keras.layers.Layer) -> int | None:
    shape = layer.output.shape
    return min(shape[1], shape[2]) if len(shape) == 4 else None


def targets(model: keras.Model, min_size: int) -> list[Target]:
    """The maps to explain: the backbone's deepest trunk map at least ``min_size`` wide, and any decoder's finest."""
    backbone = model.get_layer("backbone")
    wide = [n for n in trunk(backbone) if (_width(backbone.get_layer(n)) or 0) >= min_size]
    if not wide:
        raise ValueError(f"no backbone feature map is {min_size} px wide or more (lower evaluate.gradcam_min_map_size)")
    levels = [(int(m.group(1)), i) for i, layer in enumerate(model.layers) if (m := DECODER.match(layer.name))]
    if not levels:
        return [Target("backbone", wide[-1], True)]
    decoder = model.layers[max(levels)[1]]
    return [Target("encoder", wide[-1], True), Target("decoder", decoder.name, False)]


def _single(tensors: list):
    return tensors[0] if len(tensors) == 1 else tensors


def cam_model(model: keras.Model, chosen: list[Target]) -> keras.Model:
    """A model from the image to {"features": the classifier's input, target title: feature map}."""
    backbone = model.get_layer("backbone")
    inner = [t for t in chosen if t.in_backbone]
    exposed = keras.Model(
        backbone.inputs, [*backbone.outputs, *(backbone.get_layer(t.layer).output for t in inner)], name="exposed"
    )
    (call,) = backbone._inbound_nodes  # the outer model calls its backbone once
    head = keras.Model(
        _single(list(call.output_tensors)),
        {
            "features": model.get_layer("emotion").input,
            **{t.title: model.get_layer(t.layer).output for t in chosen if not t.in_backbone},
        },
        name="head",
    )
    image = keras.Input(model.inputs[0].shape[1:], name="image")
    exposed_out = exposed(image)
    n = len(backbone.outputs)
    out = head(_single(exposed_out[:n]))
    out.update({t.title: m for t, m in zip(inner, exposed_out[n:], strict=True)})
    return keras.Model(image, out, name=f"{model.name}_gradcam")


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
