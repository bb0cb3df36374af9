"""Approach 1 of the study, finished: InceptionResNetV2 encoder, U-Net decoder, classified from the decoder.

The decoder climbs back to input resolution through four skip connections (chosen by output stride), aligning each
upsampled map with its skip by padding or cropping computed from the two shapes, so any input size >= 75 works.
It earns its place twice: the classifier reads the pooled finest decoder map beside the pooled bottleneck, and the
decoder gets a learning signal of its own by reconstructing the (preprocessed) input image, weighted in params.
"""

from __future__ import annotations

import keras

from pipeline.models.backbone import inception_resnet_v2, skip_layers


def _align(x, size: int, name: str):
    """Pad or crop a square feature map to ``size`` x ``size`` (odd differences go to the bottom/right)."""
    diff = size - x.shape[1]
    if diff > 0:
        return keras.layers.ZeroPadding2D(((diff // 2, diff - diff // 2),) * 2, name=f"{name}_pad")(x)
    if diff < 0:
        return keras.layers.Cropping2D(((-diff // 2, -diff - -diff // 2),) * 2, name=f"{name}_crop")(x)
    return x


def _conv_block(x, filters: int, name: str):
    for i in (1, 2):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"{name}_bn{i}")(x)
        x = keras.layers.Activation("relu", name=f"{name}_relu{i}")(x)
    return x


def build(
    image_size: int, num_classes: int, weights: str | None, head_units: int, dropout: float, decoder_filters: list[int]
) -> keras.Model:
    base = inception_resnet_v2(image_size, weights)
    skip_maps = [base.get_layer(n).output for n in skip_layers(base, count=4)]
    bottleneck = base.output

    x = bottleneck
    # deepest skip first; the last level has no skip and returns to input resolution
    targets = [*reversed(skip_maps), None]
    if len(decoder_filters) != len(targets):
        raise ValueError(f"decoder_filters needs {len(targets)} entries (one per decoder level), got {decoder_filters}")
    for level, (skip, filters) in enumerate(zip(targets, decoder_filters, strict=True), start=1):
        name = f"decoder{level}"
        x = keras.layers.Conv2DTranspose(filters, 2, strides=2, name=f"{name}_up")(x)
        x = _align(x, skip.shape[1] if skip is not None else image_size, name)
        if skip is not None:
            x = keras.layers.Concatenate(name=f"{name}_concat")([x, skip])
        x = _conv_block(x, filters, name)

    reconstruction = keras.layers.Conv2D(3, 1, activation="tanh", dtype="float32", name="reconstruction")(x)
    pooled = keras.layers.Concatenate(name="pool")(
        [
            keras.layers.GlobalAveragePooling2D(name="pool_decoder")(x),
            keras.layers.GlobalAveragePooling2D(name="pool_bottleneck")(bottleneck),
        ]
    )
    h = keras.layers.Dense(head_units, activation="relu", name="head_dense")(pooled)
    h = keras.layers.Dropout(dropout, name="head_dropout")(h)
    emotion = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="emotion")(h)
    return keras.Model(base.input, {"emotion": emotion, "reconstruction": reconstruction}, name="irv2_unet")
