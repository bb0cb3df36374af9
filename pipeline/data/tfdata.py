"""tf.data input pipelines: decode, resize, the backbone's preprocessing, cache, shuffle, batch, prefetch."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE


def preprocess(images: tf.Tensor) -> tf.Tensor:
    """InceptionResNetV2's own preprocessing: uint8 [0, 255] -> float32 [-1, 1]."""
    return keras.applications.inception_resnet_v2.preprocess_input(tf.cast(images, tf.float32))


def class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """sklearn's 'balanced' weights, n / (k * n_c); a class absent from ``labels`` gets weight 0."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights


def _targets(num_classes: int, reconstruction: bool, weights: np.ndarray | None):
    table = tf.constant(weights if weights is not None else np.ones(num_classes), tf.float32)

    def to_targets(images, labels):
        y = {"emotion": tf.one_hot(labels, num_classes)}
        w = {"emotion": tf.gather(table, labels)}
        if reconstruction:  # the U-Net decoder learns to give back its (preprocessed) input
            y["reconstruction"] = images
            # a weight per pixel: MSE reduces only the channel axis, leaving (batch, H, W) to weigh
            w["reconstruction"] = tf.ones_like(images[..., 0])
        return images, y, w

    return to_targets


def labelled(
    images: tf.data.Dataset,
    labels: np.ndarray,
    num_classes: int,
    batch_size: int,
    *,
    shuffle_seed: int | None = None,
    reconstruction: bool = False,
    weights: np.ndarray | None = None,
) -> tf.data.Dataset:
    """Batches of (preprocessed images, targets by output name, sample weights by output name)."""
    ds = tf.data.Dataset.zip(images, tf.data.Dataset.from_tensor_slices(labels.astype(np.int32))).cache()
    if shuffle_seed is not None:
        ds = ds.shuffle(len(labels), seed=shuffle_seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).map(_targets(num_classes, reconstruction, weights), AUTOTUNE).prefetch(AUTOTUNE)


def image_files(paths: list[str], image_size: int) -> tf.data.Dataset:
    """Preprocessed images decoded from files (PNG or JPEG), resized to ``image_size`` where they differ."""

    def load(path):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        image = tf.image.resize(image, (image_size, image_size), method="area")
        return preprocess(image)

    return tf.data.Dataset.from_tensor_slices(paths).map(load, num_parallel_calls=AUTOTUNE, deterministic=True)


def image_arrays(images: np.ndarray) -> tf.data.Dataset:
    """Preprocessed images from an in-memory uint8 array (N x H x W x 3) already at the model's size."""
    return tf.data.Dataset.from_tensor_slices(images).map(preprocess, num_parallel_calls=AUTOTUNE)


def balanced_split(root: Path, index: pd.DataFrame, split: str, classes: list[str]) -> tuple[list[str], np.ndarray]:
    """File paths and label indices of one side ('train' or 'val') of the augment stage's output."""
    rows = index[index["split"] == split]
    if rows.empty:
        raise ValueError(f"{root}/index.csv has no '{split}' images (is augment.val_fraction 0?)")
    labels = rows["label"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    return [str(root / p) for p in rows["path"]], labels
