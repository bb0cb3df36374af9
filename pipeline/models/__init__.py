"""Model builders: one module per architecture, each a plain function returning a Keras model."""

from __future__ import annotations

import keras

from pipeline.config import TrainConfig
from pipeline.models import irv2, irv2_unet


def build(cfg: TrainConfig, image_size: int, num_classes: int) -> keras.Model:
    if cfg.architecture == "irv2_unet":
        return irv2_unet.build(
            image_size, num_classes, cfg.weights, cfg.head_units, cfg.dropout, cfg.unet.decoder_filters
        )
    return irv2.build(image_size, num_classes, cfg.weights, cfg.head_units, cfg.dropout)
