"""How close training runs to the machine: model FLOPs utilisation (MFU).

MFU = FLOPs of a training step per image x training images/s / the machine's peak FLOP/s. The FLOPs are counted by
TensorFlow's profiler (``tf.compat.v1.profiler``, the float-operation view: 2 per multiply-add) on the graph of one
training step at batch 1: the forward pass in training mode and the gradients of every trainable weight (about 3x the
forward pass; the optimizer's update, a few operations per weight, is left out). The peak is measured, not read from a
datasheet: the best rate of a large square matrix multiply in the same dtype on the same device, as TensorFlow runs it
with the threads it runs training with.
"""

from __future__ import annotations

import functools
import time

import keras
import tensorflow as tf

PEAK_SIZES = (2048, 4096)  # a 4096^3 multiply-add is 137 GFLOP: under a second on 2 CPU cores of today
PEAK_REPS = 3


def _count(graph: tf.Graph) -> int:
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"  # the profiler would print a table per op type
    return int(tf.compat.v1.profiler.profile(graph, options=options).total_float_ops)


def per_image(model: keras.Model, size: int) -> dict:
    """Forward and training-step FLOPs of ``model`` for one ``size`` x ``size`` RGB image."""
    spec = tf.TensorSpec((1, size, size, 3), model.inputs[0].dtype)

    def forward(x):
        return model(x, training=False)

    def training_step(x):
        with tf.GradientTape() as tape:
            outputs = model(x, training=True)
            loss = tf.add_n([tf.reduce_sum(tf.cast(o, tf.float32)) for o in tf.nest.flatten(outputs)])
        return tape.gradient(loss, model.trainable_variables)

    return {
        "forward": _count(tf.function(forward).get_concrete_function(spec).graph),
        "training": _count(tf.function(training_step).get_concrete_function(spec).graph),
    }


@functools.cache
def matmul_peak(dtype: str = "float32", sizes: tuple[int, ...] = PEAK_SIZES) -> float:
    """The best FLOP/s of an n x n matrix multiply over ``sizes``, ``PEAK_REPS`` timed runs each after a warm-up."""
    best = 0.0
    for n in sizes:
        a = tf.random.stateless_uniform((n, n), seed=(1, 2), dtype=tf.float32)
        a = tf.cast(a, dtype)
        tf.matmul(a, a).numpy()
        for _ in range(PEAK_REPS):
            started = time.perf_counter()
            tf.matmul(a, a).numpy()
            best = max(best, 2 * n**3 / (time.perf_counter() - started))
    return best


def utilisation(training_flops: int, images_per_s: float, peak: float) -> float:
    return round(training_flops * images_per_s / peak, 4)
