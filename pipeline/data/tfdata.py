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


def _per_batch(ds: tf.data.Dataset, fn, seed: int) -> tf.data.Dataset:
    """``fn(seed_pair, batch)`` over the batches of ``ds``, each batch with a stateless seed pair of its own, drawn
    from ``seed`` anew every epoch and the same in every run."""
    seed_pairs = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    return tf.data.Dataset.zip(seed_pairs, ds).map(fn, AUTOTUNE).prefetch(AUTOTUNE)


def mixup(ds: tf.data.Dataset, alpha: float, seed: int) -> tf.data.Dataset:
    """``ds`` (batches of ``labelled``) with each image blended into another of its batch (mixup, Zhang et al. 2018).

    Image i becomes ``lam_i * x_i + (1 - lam_i) * x_j`` for a partner j drawn by permuting the batch, and its
    emotion target and weight are blended alike; ``lam_i`` is drawn from Beta(alpha, alpha) and folded to at least
    0.5, so each image stays mostly itself. The U-Net's reconstruction target is the blended image (it gives back
    its input). The draws come from ``seed`` and change every epoch, the same in every run. ``alpha`` 0: ``ds`` as
    it is.
    """
    if alpha <= 0:
        return ds

    def blend(seed_pair, batch):
        images, y, w = batch
        n = tf.shape(images)[0]
        seeds = tf.random.experimental.stateless_split(seed_pair, 3)
        first = tf.random.stateless_gamma([n], seeds[0], alpha)
        second = tf.random.stateless_gamma([n], seeds[1], alpha)
        lam = first / tf.maximum(first + second, 1e-12)
        lam = tf.maximum(lam, 1.0 - lam)
        partner = tf.argsort(tf.random.stateless_uniform([n], seeds[2]))

        def mix(values):
            shape = tf.concat([[n], tf.ones([tf.rank(values) - 1], tf.int32)], 0)
            share = tf.reshape(tf.cast(lam, values.dtype), shape)
            return share * values + (1 - share) * tf.gather(values, partner)

        images = mix(images)
        y = {**y, "emotion": mix(y["emotion"])}
        if "reconstruction" in y:
            y["reconstruction"] = images
        w = {**w, "emotion": mix(w["emotion"])}
        return images, y, w

    return _per_batch(ds, blend, seed)


def jitter(ds: tf.data.Dataset, flip: bool, shift: float, seed: int) -> tf.data.Dataset:
    """``ds`` (batches of ``labelled``) with each image mirrored left to right (half of them, when ``flip``) and
    moved by a whole number of pixels, up to ``shift`` of its side each way, vertically and horizontally (the edge
    reflected into the gap). The U-Net's reconstruction target is the moved image. The draws come from ``seed``
    (a stream of their own, apart from ``mixup``'s) and change every epoch, the same in every run. Neither: ``ds`` as
    it is."""
    if not flip and shift <= 0:
        return ds

    def move(seed_pair, batch):
        images, y, w = batch
        n = tf.shape(images)[0]
        seeds = tf.random.experimental.stateless_split(tf.random.experimental.stateless_fold_in(seed_pair, 1), 2)
        if flip:
            mirrored = tf.random.stateless_uniform([n], seeds[0]) < 0.5
            images = tf.where(mirrored[:, None, None, None], tf.reverse(images, axis=[2]), images)
        height, width = images.shape[1], images.shape[2]
        pad = round(shift * min(height, width))
        if pad > 0:
            padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
            corner = tf.random.stateless_uniform([n, 2], seeds[1], minval=0, maxval=2 * pad + 1, dtype=tf.int32)
            corner = tf.cast(corner, tf.float32)
            # crop_and_resize samples row y1 * (H' - 1) + i * (y2 - y1) * (H' - 1) / (H - 1): with these boxes,
            # exactly the rows (and columns) corner + i of the padded batch, so no pixel is interpolated
            last = tf.constant([height - 1, width - 1], tf.float32)
            span = tf.constant([height + 2 * pad - 1, width + 2 * pad - 1], tf.float32)
            boxes = tf.concat([corner / span, (corner + last) / span], axis=1)
            images = tf.image.crop_and_resize(padded, boxes, tf.range(n), [height, width])
        if "reconstruction" in y:
            y = {**y, "reconstruction": images}
        return images, y, w

    return _per_batch(ds, move, seed)


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
