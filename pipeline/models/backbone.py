"""The InceptionResNetV2 backbone both architectures share, built into the model's own graph, and what the rest of
the pipeline needs to know about it: which of a model's layers are the backbone's (fine-tuning), which are its block
outputs (Grad-CAM) and which give the skip connections (U-Net, by output stride).

Its layers are found by the names keras.applications gives them, never through a nested sub-model: a model is one
flat functional graph, so any backbone map is reachable from the model's input with the public API alone.
"""

from __future__ import annotations

import re
from pathlib import Path

import keras

from pipeline.config import UserError

IMAGENET = "imagenet"
BN_MOMENTUM = 0.9
NOTOP_FILE = "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5"
LAST_LAYER = "conv_7b_ac"  # InceptionResNetV2's output without its top, as keras.applications names it
# a block's output, where its parallel towers (and a residual block's inner convolutions) have joined again
BLOCK_OUTPUT = re.compile(r"^(mixed_\d[a-z]|block(35|17|8)_\d+_ac|conv_7b_ac)$")


class WeightsError(UserError, RuntimeError):
    """Pretrained weights could not be had; the message says what to do instead."""


def inception_resnet_v2(image_size: int, weights: str | None) -> keras.Model:
    """``keras.applications.InceptionResNetV2`` without its top, with ``weights`` imagenet, None or a local file.

    Its input is a fresh ``keras.Input`` named "image", so an architecture built from ``model.input`` to a head on
    ``model.output`` has the backbone's layers in its own graph instead of a nested model.

    ImageNet weights are downloaded by Keras on first use (to ~/.keras/models); where there is no network that
    fails, and we say how to proceed rather than surface a bare URL error.
    """
    if weights not in (None, IMAGENET) and not Path(weights).is_file():
        raise WeightsError(f"weights file {weights} not found (give 'imagenet', null, or a path to a .h5/.weights.h5)")
    try:
        model = keras.applications.InceptionResNetV2(
            include_top=False,
            weights=weights,
            input_tensor=keras.Input((image_size, image_size, 3), name="image"),
            input_shape=(image_size, image_size, 3),
        )
    except Exception as exc:  # Keras raises a bare Exception on a failed download
        if weights != IMAGENET or "fetch failure" not in str(exc).lower() and "url" not in str(exc).lower():
            raise
        raise WeightsError(
            "could not download the ImageNet weights of InceptionResNetV2 (no network here?). Either run once where "
            f"there is network access, or copy {NOTOP_FILE} into ~/.keras/models/, or set the model's weights in "
            f"params.yaml to a local file or to null (train from scratch). Cause: {exc}"
        ) from None
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            # Keras' 0.99 lets the moving statistics lag far behind the weights over the few hundred steps of a
            # small dataset trained from scratch, and validation then sees garbage; pretrained BN stays frozen.
            layer.momentum = BN_MOMENTUM
    # keras.applications keeps a given input tensor as a one-element list, and a model built from that expects a
    # list (Keras warns at every call with a plain batch of images); over the tensor itself it does not
    return keras.Model(model.inputs[0], model.output, name=model.name)


def backbone_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers of ``model`` that are its InceptionResNetV2, in order: all of them up to and including its last.

    Keras orders a functional model's layers by their distance from the outputs, so every layer the backbone's last
    layer depends on comes before it and every layer that depends on it (head, decoder) after it.
    """
    names = [layer.name for layer in model.layers]
    if LAST_LAYER not in names:
        raise ValueError(
            f"model {model.name} has no layer {LAST_LAYER!r}: not built with InceptionResNetV2 in its own graph "
            "(a model saved before the backbone stopped being a nested model has to be trained again)"
        )
    return model.layers[: names.index(LAST_LAYER) + 1]


def block_outputs(model: keras.Model) -> list[keras.layers.Layer]:
    """The backbone layers that every path from the input to its last layer passes through, in order: the stem's
    layers, then each block's output.

    A block's branches each hold part of its map only, which is why Grad-CAM reads block outputs. The stem is a
    plain chain, so each of its layers qualifies; it ends at the first block's input, whose width (the last stem
    pooling's) the first block's output shares, so the stem is what is wider than that.
    """
    layers = backbone_layers(model)
    blocks = [layer for layer in layers if BLOCK_OUTPUT.match(layer.name)]
    first = layers.index(blocks[0])
    stem = [
        layer
        for layer in layers[:first]
        if not isinstance(layer, keras.layers.InputLayer) and (spatial_size(layer) or 0) > spatial_size(blocks[0])
    ]
    return stem + blocks


def spatial_size(layer: keras.layers.Layer) -> int | None:
    shape = layer.output.shape
    return shape[1] if len(shape) == 4 else None


def skip_layers(backbone: keras.Model, count: int = 4) -> list[str]:
    """Names of the layers to take skip connections from at output strides 2, 4, ... 2**count, shallow to deep.

    Walking the layers in order, a new stride level starts where the feature map shrinks by 1.5x or more (valid
    convolutions shave a pixel or two without starting a level). A level's skip is the last layer at that level
    before the next level begins. Nothing depends on layer indices or on one input size.
    """
    levels: list[tuple[int, str]] = []  # (feature-map size that opened the level, last layer seen at the level)
    for layer in backbone.layers[1:]:
        size = spatial_size(layer)
        if size is None:
            continue
        if not levels or size <= levels[-1][0] / 1.5:
            levels.append((size, layer.name))
        elif size <= levels[-1][0]:
            levels[-1] = (levels[-1][0], layer.name)
        # a larger map here is a parallel branch of an earlier level: it does not move that level's skip
    if len(levels) < count + 1:
        raise ValueError(
            f"a {backbone.input.shape[1]} px input gives only {len(levels)} stride levels; "
            f"{count} skips and a bottleneck need {count + 1}"
        )
    return [name for _, name in levels[:count]]
