"""Where and how TensorFlow runs: seeds, mixed precision, and the distribution strategy."""

from __future__ import annotations

import keras
import tensorflow as tf

from pipeline.config import TrainConfig


def configure(cfg: TrainConfig, seed: int) -> tf.distribute.Strategy:
    """Seed everything, set the precision policy, and pick a strategy: MirroredStrategy over 2+ GPUs, else default."""
    keras.utils.set_random_seed(seed)
    keras.mixed_precision.set_global_policy("mixed_float16" if cfg.mixed_precision else "float32")
    gpus = tf.config.list_physical_devices("GPU")
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
