"""`python -m pipeline bench`: how fast this machine trains, feeds, augments and serves the two models.

Not a pipeline stage (nothing downstream reads it): `make bench` writes bench/results.json. Figures come from a few
steps after a warm-up step on synthetic batches, so they are rough but comparable between runs on one machine. The
input pipeline and augmentation are timed on the same images that the models would see (the balanced data when it is
there, otherwise generated faces), and each is set beside what it must keep up with: the input pipeline beside the
training throughput, our augmentation beside Keras' legacy ImageDataGenerator doing the same operations.
On a GPU every model is also timed with mixed precision and XLA on and off; on a CPU only as params.yaml says.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from pipeline import atomic
from pipeline.config import AugmentConfig, Params, TrainConfig
from pipeline.data import sample, tfdata
from pipeline.data.transforms import augment
from pipeline.models import build
from pipeline.stages import train

STUDY_SIZE = 299  # the study's input size, timed beside params' image_size
TARGET_RATIO = 5.0  # input pipeline vs training, our augmentation vs Keras': the margin we want on both


@dataclasses.dataclass(frozen=True)
class Budget:
    """How much work each figure gets; --quick shrinks everything to a smoke test."""

    sizes: list[int]
    steps: int  # timed training steps after one warm-up step (graph tracing included in the warm-up)
    large_steps: int  # the same above params' image_size, where a step takes long on a CPU
    large_batch: int  # training batch above params' image_size
    inference_reps: int
    latency_reps: int
    augment_images: int
    pipeline_images: int


FULL = Budget([], 3, 2, 8, inference_reps=2, latency_reps=10, augment_images=256, pipeline_images=512)
QUICK = Budget([], 1, 1, 2, inference_reps=1, latency_reps=2, augment_images=16, pipeline_images=32)


def rate(count: int, seconds: float) -> float:
    return round(count / max(seconds, 1e-9), 2)


def peak_memory() -> dict:
    """Peak resident memory of this process so far and, per visible GPU, TensorFlow's peak allocation."""
    # Linux reports ru_maxrss in KiB, macOS in bytes
    scale = 1 if sys.platform == "darwin" else 1024
    out = {"rss_peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20, 1)}
    for i, _ in enumerate(tf.config.list_physical_devices("GPU")):
        out[f"gpu{i}_peak_mib"] = round(tf.config.experimental.get_memory_info(f"GPU:{i}")["peak"] / 2**20, 1)
    return out


def reset_gpu_peaks() -> None:
    for i, _ in enumerate(tf.config.list_physical_devices("GPU")):
        tf.config.experimental.reset_memory_stats(f"GPU:{i}")


def machine() -> dict:
    gpus = tf.config.list_physical_devices("GPU")
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "opencv": cv2.__version__,
        "devices": [d.name for d in tf.config.list_physical_devices()],
        "gpus": [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus],
    }


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


def synthetic_batch(size: int, batch: int, classes: int, reconstruction: bool, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)
    y = {"emotion": np.eye(classes, dtype=np.float32)[rng.integers(0, classes, batch)]}
    if reconstruction:
        y["reconstruction"] = x
    return x, y


def training(model: keras.Model, cfg: TrainConfig, x, y, steps: int) -> dict:
    train.compile_model(model, cfg, cfg.learning_rate)
    started = time.perf_counter()
    model.train_on_batch(x, y)  # warm-up: builds the optimizer and traces the step
    first = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return {"batch_size": len(x), "steps": steps, "first_step_s": round(first, 2),
            "images_per_s": rate(steps * len(x), time.perf_counter() - started)}  # fmt: skip


def inference(model: keras.Model, size: int, cfg: TrainConfig, reps: int, latency_reps: int) -> dict:
    def forward(x):
        return model(x, training=False)["emotion"]

    if not cfg.run_eagerly:  # one graph for every batch size, as a served model would run
        spec = tf.TensorSpec((None, size, size, 3), tf.float32)
        forward = tf.function(forward, input_signature=[spec], jit_compile=cfg.xla)
    rng = np.random.default_rng(0)
    batch = rng.uniform(-1, 1, (32, size, size, 3)).astype(np.float32)
    forward(batch[:1]).numpy()  # warm-up (and tracing)
    forward(batch).numpy()
    started = time.perf_counter()
    for _ in range(reps):
        forward(batch).numpy()
    throughput = rate(reps * len(batch), time.perf_counter() - started)
    latencies = []
    for i in range(min(latency_reps, len(batch))):
        started = time.perf_counter()
        forward(batch[i : i + 1]).numpy()
        latencies.append((time.perf_counter() - started) * 1000)
    return {"batch32_images_per_s": throughput, "batch1_median_ms": round(statistics.median(latencies), 2),
            "latency_calls": latency_reps}  # fmt: skip


def variants(cfg: TrainConfig, gpu: bool) -> list[TrainConfig]:
    """Mixed precision and XLA off and on where a GPU is there; on a CPU float32 and params' XLA setting only."""
    if not gpu:
        return [cfg.model_copy(update={"mixed_precision": False})]
    return [cfg.model_copy(update={"mixed_precision": m, "xla": x}) for m in (False, True) for x in (False, True)]


def model_figures(params: Params, name: str, size: int, budget: Budget, gpu: bool) -> list[dict]:
    figures = []
    base = params.train[name].model_copy(update={"weights": None})  # speed does not depend on the starting weights
    small = size <= params.image_size
    batch = base.batch_size if small else min(base.batch_size, budget.large_batch)
    for cfg in variants(base, gpu):
        keras.backend.clear_session()
        keras.mixed_precision.set_global_policy("mixed_float16" if cfg.mixed_precision else "float32")
        reset_gpu_peaks()
        model = build(cfg, size, len(params.classes))
        x, y = synthetic_batch(size, batch, len(params.classes), cfg.unet is not None, params.seed)
        entry = {"model": name, "image_size": size, "mixed_precision": cfg.mixed_precision, "xla": cfg.xla,
                 "run_eagerly": cfg.run_eagerly, "parameters": model.count_params()}  # fmt: skip
        entry["training"] = training(model, cfg, x, y, budget.steps if small else budget.large_steps)
        entry["inference"] = inference(model, size, cfg, budget.inference_reps, budget.latency_reps)
        entry["memory"] = peak_memory()
        figures.append(entry)
        print(
            f"bench {name} {size}px mp={cfg.mixed_precision} xla={cfg.xla}: "
            f"train {entry['training']['images_per_s']} img/s, "
            f"infer {entry['inference']['batch32_images_per_s']} img/s, "
            f"latency {entry['inference']['batch1_median_ms']} ms",
            flush=True,
        )
    keras.mixed_precision.set_global_policy("float32")
    return figures


def run(params: Params, data: Path, budget: Budget) -> dict:
    started = time.perf_counter()
    keras.utils.set_random_seed(params.seed)
    gpu = bool(tf.config.list_physical_devices("GPU"))
    results: dict = {"machine": machine(), "budget": dataclasses.asdict(budget), "models": [], "input_pipeline": []}
    for size in budget.sizes:
        for name in params.train:
            results["models"].extend(model_figures(params, name, size, budget, gpu))

    images = faces(budget.augment_images, params.image_size, params.seed)
    results["augmentation"] = augmentation(images, params.augment, params.seed)
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        for size in budget.sizes:
            paths, source = pipeline_files(data, size, budget.pipeline_images, params.seed, Path(scratch))
            batch = max(m["training"]["batch_size"] for m in results["models"] if m["image_size"] == size)
            entry = {"image_size": size, "source": source, **input_pipeline(paths, size, batch, len(params.classes),
                                                                           params.seed)}  # fmt: skip
            # the first (decoding) pass is the conservative figure; training reads the cache after epoch 1
            entry["ratio_to_training"] = {
                f"{m['model']} mp={m['mixed_precision']} xla={m['xla']}": round(
                    entry["first_pass_images_per_s"] / m["training"]["images_per_s"], 2
                )
                for m in results["models"]
                if m["image_size"] == size
            }
            entry["meets_target"] = min(entry["ratio_to_training"].values()) >= TARGET_RATIO
            results["input_pipeline"].append(entry)
    results["memory"] = peak_memory()
    results["seconds"] = round(time.perf_counter() - started, 1)
    return results


def main(params: Params, argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline bench", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/results.json"))
    parser.add_argument("--data", type=Path, default=Path("data/balanced"), help="training images to feed, if built")
    parser.add_argument("--quick", action="store_true", help="a smoke test: one step of everything, params' size only")
    parser.add_argument(
        "--sizes", type=int, nargs="+", help=f"default: image_size and {STUDY_SIZE} (quick: image_size)"
    )
    args = parser.parse_args(argv)
    budget = QUICK if args.quick else FULL
    default_sizes = [params.image_size] if args.quick else sorted({params.image_size, STUDY_SIZE})
    budget = dataclasses.replace(budget, sizes=args.sizes or default_sizes)
    results = run(params, args.data, budget)
    atomic.write_json(args.out, results)
    print(f"bench: {args.out} in {results['seconds']} s")
