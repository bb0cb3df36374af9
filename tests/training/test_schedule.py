"""The learning-rate schedule (train.<model>.lr_schedule) and which weights a training keeps (train.<model>.keep),
through the real training loop on the tiny stand-in model of test_resume."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from pipeline.training import callbacks, loop
from tests.training.test_resume import FOR_PHASE, Crash, Recorder, dataset, tiny_cfg, tiny_model

STEPS = 3  # 12 images in batches of 4


@pytest.fixture
def cfg(params):
    # patience 0 would stop or halve at the first epoch without progress, were early stopping or the plateau used
    return tiny_cfg(params, learning_rate=0.01, early_stopping_patience=0, reduce_lr_patience=0,
                    lr_schedule="cosine", keep="last")  # fmt: skip


def _fit(monkeypatch, cfg, state, recorder, seed=1):
    monkeypatch.setattr(callbacks, "for_phase", lambda *args: [*FOR_PHASE(*args), recorder])
    return loop.fit(tiny_model(seed), cfg, dataset(), dataset(), state, state.parent / "live")


def _cosine(cfg, epoch: int) -> float:
    """The rate after ``epoch`` whole epochs of the 3-epoch phase."""
    return 0.5 * cfg.learning_rate * (1 + math.cos(math.pi * epoch * STEPS / (cfg.epochs * STEPS)))


def test_the_cosine_schedule_ends_the_phase_at_zero_and_a_resumed_run_goes_on_along_it(monkeypatch, cfg, tmp_path):
    assert loop.steps_per_epoch(dataset()) == STEPS
    state = tmp_path / "state"
    state.mkdir()
    with pytest.raises(Crash):
        _fit(monkeypatch, cfg, state, Recorder(crash_at=2))
    history = _fit(monkeypatch, cfg, state, Recorder())
    rates = [h["learning_rate"] for h in history]
    np.testing.assert_allclose(rates, [_cosine(cfg, e) for e in (1, 2, 3)], rtol=1e-5, atol=1e-9)
    assert rates[-1] < 1e-9
    # every epoch ran although none but the first improved on nothing: with keep: last there is no early stopping
    assert [h["epoch"] for h in history] == [1, 2, 3]


def test_keep_last_keeps_the_last_epoch_whatever_its_validation_score(monkeypatch, cfg, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    recorder = Recorder()
    history = _fit(monkeypatch, cfg, state, recorder)
    assert callbacks.best_epoch(history, "last") == 3
    model = tiny_model(7)  # other weights, which the file must replace
    loop.without_optimizer(model).load_weights(callbacks.best_weights(state))
    for kept, last in zip(model.get_weights(), recorder.weights_at_end[2], strict=True):
        np.testing.assert_array_equal(kept, last)


def test_the_callbacks_follow_the_schedule_and_keep_settings(cfg, tmp_path):
    def kinds(**update):
        chosen = cfg.model_copy(update=update)
        model = tiny_model(1)
        found = callbacks.for_phase(model, chosen, tmp_path, "scratch", tmp_path / "live", [], dataset())
        return {type(c) for c in found}

    assert keras.callbacks.EarlyStopping not in kinds(keep="last", lr_schedule="plateau")
    assert keras.callbacks.ReduceLROnPlateau in kinds(keep="last", lr_schedule="plateau")
    assert keras.callbacks.ReduceLROnPlateau not in kinds(keep="best", lr_schedule="cosine")
    assert keras.callbacks.EarlyStopping in kinds(keep="best", lr_schedule="cosine")
    assert loop.schedule(cfg.model_copy(update={"lr_schedule": "plateau"}), 0.01, 9) == 0.01


def test_best_epoch_reads_the_history_as_the_keep_setting_says():
    history = [{"epoch": 1, "val_macro_f1": 0.2}, {"epoch": 2, "val_macro_f1": 0.6}, {"epoch": 3, "val_macro_f1": 0.4}]
    assert callbacks.best_epoch(history) == 2
    assert callbacks.best_epoch(history, "last") == 3
    assert callbacks.best_epoch([], "last") == 0
