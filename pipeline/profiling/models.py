"""Throughput and latency of a model: training steps and inference on synthetic batches."""

from __future__ import annotations

import statistics
import time

import keras
import numpy as np
import tensorflow as tf

from pipeline.config import TrainConfig
from pipeline.profiling.system import rate
from pipeline.training import loop


def synthetic_batch(size: int, batch: int, classes: int, reconstruction: bool, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)
    y = {"emotion": np.eye(classes, dtype=np.float32)[rng.integers(0, classes, batch)]}
    if reconstruction:
        y["reconstruction"] = x
    return x, y


def training(model: keras.Model, cfg: TrainConfig, x, y, steps: int) -> dict:
    loop.compile_model(model, cfg, cfg.learning_rate)
    started = time.perf_counter()
    loop.build_training_state(model)  # as the train stage does: the step is then traced once
    model.train_on_batch(x, y)  # warm-up: traces the step
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
