"""train.<model>.weight_decay: what loop.compile_model's optimizer decays, and that 0 leaves the step as it was."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from pipeline.training import loop

CLASSES = 6


def tiny() -> keras.Model:
    image = keras.Input((4, 4, 3), name="image")
    features = keras.layers.Conv2D(4, 3, padding="same", name="conv")(image)
    features = keras.layers.BatchNormalization(name="bn")(features)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    emotion = keras.layers.Dense(CLASSES, activation="softmax", name="emotion")(pooled)
    return keras.Model(image, {"emotion": emotion})


def one_step_without_gradient(params, optimizer: str, decay: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each trainable variable's value before and after one optimizer step whose gradients are all zero: the
    optimizer's own update is then nothing, so whatever changed is the decay."""
    cfg = params.train["irv2"].model_copy(
        update={"optimizer": optimizer, "weight_decay": decay, "learning_rate": 0.1, "lr_schedule": "plateau"}
    )
    keras.utils.set_random_seed(0)
    model = tiny()
    loop.compile_model(model, cfg, cfg.learning_rate)
    before = {v.path: np.array(v.numpy()) for v in model.trainable_variables}
    model.optimizer.apply_gradients([(np.zeros(v.shape, "float32"), v) for v in model.trainable_variables])
    return {v.path: (before[v.path], np.array(v.numpy())) for v in model.trainable_variables}


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_kernels_shrink_by_rate_times_decay_and_offsets_scales_do_not(params, optimizer):
    steps = one_step_without_gradient(params, optimizer, 0.5)
    assert set(steps) == {"conv/kernel", "conv/bias", "bn/gamma", "bn/beta", "emotion/kernel", "emotion/bias"}
    for path, (before, after) in steps.items():
        if path.endswith("/kernel"):
            np.testing.assert_allclose(after, before * (1 - 0.1 * 0.5), rtol=1e-6, err_msg=path)
            assert np.abs(before).sum() > 0, path
        else:
            np.testing.assert_array_equal(after, before, err_msg=path)


def test_zero_is_no_decay_at_all(params):
    cfg = params.train["irv2"].model_copy(update={"weight_decay": 0.0})
    model = tiny()
    loop.compile_model(model, cfg, cfg.learning_rate)
    assert model.optimizer.weight_decay is None  # Keras skips the decay step, so the shipped trainings are unchanged
    for path, (before, after) in one_step_without_gradient(params, "adam", 0.0).items():
        np.testing.assert_array_equal(after, before, err_msg=path)
