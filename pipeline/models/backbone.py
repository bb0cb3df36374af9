"""The InceptionResNetV2 backbone both architectures share, and the choice of its skip layers by output stride."""

from __future__ import annotations

from pathlib import Path

import keras

IMAGENET = "imagenet"
BN_MOMENTUM = 0.9
NOTOP_FILE = "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5"


class WeightsError(RuntimeError):
    """Pretrained weights could not be had; the message says what to do instead."""


def inception_resnet_v2(image_size: int, weights: str | None) -> keras.Model:
    """``keras.applications.InceptionResNetV2`` without its top, with ``weights`` imagenet, None or a local file.

    ImageNet weights are downloaded by Keras on first use (to ~/.keras/models); where there is no network that
    fails, and we say how to proceed rather than surface a bare URL error.
    """
    if weights not in (None, IMAGENET) and not Path(weights).is_file():
        raise WeightsError(f"weights file {weights} not found (give 'imagenet', null, or a path to a .h5/.weights.h5)")
    try:
        model = keras.applications.InceptionResNetV2(
            include_top=False, weights=weights, input_shape=(image_size, image_size, 3)
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
    return model


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
