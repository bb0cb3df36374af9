"""Where and how TensorFlow runs: seeds, mixed precision, the distribution strategy, and the resume state folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import keras
import tensorflow as tf

from pipeline import atomic
from pipeline.config import TrainConfig


def configure(cfg: TrainConfig, seed: int) -> tf.distribute.Strategy:
    """Seed everything, set the precision policy, and pick a strategy: MirroredStrategy over 2+ GPUs, else default."""
    keras.utils.set_random_seed(seed)
    keras.mixed_precision.set_global_policy("mixed_float16" if cfg.mixed_precision else "float32")
    gpus = tf.config.list_physical_devices("GPU")
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()


def state_dir(root: Path, key: str) -> Path:
    """The resume folder for inputs ``key``; state left by other inputs is stale and removed."""
    marker = root / "inputs.key"
    if root.exists() and (not marker.exists() or marker.read_text() != key):
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    if not marker.exists():
        atomic.write_text(marker, key)
    return root
