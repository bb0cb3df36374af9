"""The two halves of MFU: FLOPs counted by TensorFlow's profiler, and the measured matrix-multiply peak."""

from __future__ import annotations

import keras
import pytest

from pipeline.profiling import flops


def test_the_profiler_counts_a_dense_layer_as_two_flops_per_multiply_add():
    inputs = keras.Input((4, 4, 3))
    outputs = keras.layers.Dense(5, use_bias=False)(keras.layers.Flatten()(inputs))
    counted = flops.per_image(keras.Model(inputs, outputs), 4)
    assert counted["forward"] == 2 * 48 * 5
    # the gradient of the weights is one more multiply of the same size; no gradient of the input is asked for
    assert counted["training"] >= 2 * counted["forward"]


def test_the_peak_is_a_rate_of_the_same_order_as_the_work_it_timed():
    peak = flops.matmul_peak("float32", (256,))
    assert peak > 1e8  # any CPU of the last twenty years multiplies faster than 0.1 GFLOP/s
    assert flops.utilisation(10**9, 2.0, 4e9) == pytest.approx(0.5)
