"""Approach 2 of the study: InceptionResNetV2 with a classification head (pool, dense, dropout, softmax)."""

from __future__ import annotations

import keras

from pipeline.models.backbone import inception_resnet_v2


def build(image_size: int, num_classes: int, weights: str | None, head_units: int, dropout: float) -> keras.Model:
    backbone = inception_resnet_v2(image_size, weights)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(backbone.output)
    x = keras.layers.Dense(head_units, activation="relu", name="head_dense")(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    # float32 output: stable softmax under mixed precision
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="emotion")(x)
    return keras.Model(backbone.input, {"emotion": outputs}, name="irv2")
