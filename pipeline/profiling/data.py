"""Throughput of the data side: our augmentation beside Keras' legacy generator, and the tf.data input pipeline."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import tensorflow as tf

from pipeline.config import AugmentConfig
from pipeline.data import sample, tfdata
from pipeline.data.transforms import augment
from pipeline.profiling.system import rate

TARGET_RATIO = 5.0  # input pipeline vs training, our augmentation vs Keras': the margin we want on both


def faces(count: int, size: int, seed: int) -> np.ndarray:
    """Generated faces (uint8 RGB), the same drawing as the sample dataset."""
    rng = np.random.default_rng(seed)
    names = list(sample.FOLDERS)
    return np.stack([draw_rgb(names[i % len(names)], rng, size) for i in range(count)])


def draw_rgb(emotion: str, rng: np.random.Generator, size: int) -> np.ndarray:
    return cv2.cvtColor(sample.draw_face(emotion, rng, size), cv2.COLOR_BGR2RGB)


def keras_generator(cfg: AugmentConfig, seed: int):
    """Keras' legacy ImageDataGenerator set to our augmentation: one affine warp, flip, brightness, contrast."""
    # tf.keras is Keras 3's compatibility namespace; it still holds the legacy generator that keras.* dropped
    generator_type = tf.keras.preprocessing.image.ImageDataGenerator
    rng = np.random.default_rng(seed)

    def contrast(x: np.ndarray) -> np.ndarray:  # the generator has no contrast option
        return np.clip((x - 127.5) * rng.uniform(1 - cfg.contrast, 1 + cfg.contrast) + 127.5, 0, 255)

    return generator_type(
        rotation_range=cfg.rotation,
        width_shift_range=cfg.shift,
        height_shift_range=cfg.shift,
        zoom_range=cfg.zoom,
        horizontal_flip=cfg.horizontal_flip,
        brightness_range=(1 - cfg.brightness, 1 + cfg.brightness) if cfg.brightness else None,
        fill_mode="reflect",
        preprocessing_function=contrast,
    )


def augmentation(images: np.ndarray, cfg: AugmentConfig, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    augment(images[0], cfg, rng)  # warm-up: OpenCV's first call sets up its thread pool
    started = time.perf_counter()
    for image in images:
        augment(image, cfg, rng)
    ours = rate(len(images), time.perf_counter() - started)

    flow = keras_generator(cfg, seed).flow(images.astype(np.float32), batch_size=32, shuffle=False, seed=seed)
    started = time.perf_counter()
    done = sum(len(next(flow)) for _ in range(len(flow)))
    theirs = rate(done, time.perf_counter() - started)
    return {
        "images": len(images),
        "size": images.shape[1],
        "ours_images_per_s": ours,
        "keras_image_data_generator_images_per_s": theirs,
        "speedup": round(ours / theirs, 2),
        "meets_target": ours >= TARGET_RATIO * theirs,
    }


def pipeline_files(data: Path, size: int, count: int, seed: int, scratch: Path) -> tuple[list[str], str]:
    """Training image files at ``size``: the balanced data when it has that size, else generated PNGs."""
    index = data / "index.csv"
    if index.exists():
        rows = pd.read_csv(index)
        paths = [str(data / p) for p in rows.loc[rows["split"] == "train", "path"]]
        if paths and cv2.imread(paths[0]).shape[0] == size:
            return paths[:count], str(data)
    folder = scratch / f"faces-{size}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(faces(count, size, seed)):
        path = folder / f"{i:05d}.png"
        cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        paths.append(str(path))
    return paths, "generated faces (PNG)"


def input_pipeline(paths: list[str], size: int, batch: int, classes: int, seed: int) -> dict:
    """Images/s of the training input pipeline alone: the first pass decodes files, later ones read the cache."""
    labels = np.arange(len(paths)) % classes
    ds = tfdata.labelled(tfdata.image_files(paths, size), labels, classes, batch, shuffle_seed=seed)
    passes = []
    for _ in range(2):
        started = time.perf_counter()
        count = sum(int(images.shape[0]) for images, *_ in ds)
        passes.append(rate(count, time.perf_counter() - started))
    return {"images": len(paths), "batch_size": batch, "first_pass_images_per_s": passes[0],
            "cached_images_per_s": passes[1]}  # fmt: skip
