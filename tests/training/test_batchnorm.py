"""BatchNormalization statistics recomputed for the current weights before validation (training/batchnorm.py)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from pipeline.training import batchnorm


def _model(frozen: bool = False) -> keras.Model:
    inputs = keras.Input((3,))
    normalised = keras.layers.BatchNormalization(momentum=0.9, name="bn")(inputs)
    if frozen:
        normalised = keras.layers.BatchNormalization(name="frozen")(normalised)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(normalised))
    if frozen:
        model.get_layer("frozen").trainable = False
    return model


def _batches() -> tuple[np.ndarray, tf.data.Dataset]:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(i, 1 + i, (4, 3)) for i in range(3)]).astype(np.float32)
    y = np.eye(2, dtype=np.float32)[rng.integers(0, 2, len(x))]
    return x, tf.data.Dataset.from_tensor_slices((x, y)).batch(4)


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "graph"])
def test_statistics_become_the_mean_of_the_batch_statistics(graph):
    model = _model(frozen=True)
    x, data = _batches()
    frozen = [v.numpy().copy() for v in model.get_layer("frozen").non_trainable_weights]
    forward = tf.function(lambda images: model(images, training=True)) if graph else None

    assert batchnorm.recompute(model, data, 2, forward) == 2  # the first two batches only
    bn = model.get_layer("bn")
    first, second = x[:4], x[4:8]
    np.testing.assert_allclose(bn.moving_mean.numpy(), (first.mean(0) + second.mean(0)) / 2, rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), (first.var(0) + second.var(0)) / 2, rtol=1e-5)
    assert bn.momentum == 0.9  # put back
    # a layer that is not trainable (a frozen pretrained base) keeps its statistics
    for kept, now in zip(frozen, model.get_layer("frozen").non_trainable_weights, strict=True):
        np.testing.assert_array_equal(kept, now.numpy())


def test_validation_in_fit_sees_the_recomputed_statistics():
    model = _model()
    x, data = _batches()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="categorical_crossentropy")
    before = model.get_layer("bn").moving_mean.numpy().copy()
    history = model.fit(
        data,
        validation_data=data,
        epochs=1,
        shuffle=False,
        verbose=0,
        callbacks=[batchnorm.Recompute(data, 3, eager=False)],
    )
    # recomputed over all three batches (not Keras' moving average, which starts from zero at momentum 0.9)
    np.testing.assert_allclose(model.get_layer("bn").moving_mean.numpy(), x.reshape(3, 4, 3).mean(1).mean(0), rtol=1e-5)
    assert not np.allclose(model.get_layer("bn").moving_mean.numpy(), before)
    # the weights did not change after validation, so scoring again now gives what validation reported
    assert history.history["val_loss"][0] == pytest.approx(model.evaluate(data, verbose=0), rel=1e-5)


def test_zero_batches_changes_nothing():
    model = _model()
    _, data = _batches()
    assert batchnorm.recompute(model, data, 0) == 0
    np.testing.assert_array_equal(model.get_layer("bn").moving_mean.numpy(), np.zeros(3))
