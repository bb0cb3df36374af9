"""Unit tests of resuming a training (pipeline.training.loop.fit): a crash mid-phase, then a rerun on the same state
folder.

A tiny stand-in model keeps these to seconds, with the names the training loop relies on: an "emotion" softmax, and a
stand-in backbone that ends in a layer named ``conv_7b_ac`` (InceptionResNetV2's last layer: the loop takes the
layers up to it as the backbone, to freeze and unfreeze). The same code path runs the real models, and
tests/training/test_train_integration.py kills a real `python -m pipeline train` with SIGKILL.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from pipeline.stages import train
from pipeline.training import callbacks, loop
from pipeline.training.state import keyed_folder

CLASSES = 6
FOR_PHASE = callbacks.for_phase  # the real one, before any test wraps it


class Crash(Exception):
    """Stands in for the kill: raised as an epoch begins."""


class Recorder(keras.callbacks.Callback):
    """Records the epochs a fit runs and the weights at each epoch's end; crashes as epoch ``crash_at`` begins."""

    def __init__(self, crash_at: int | None = None):
        super().__init__()
        self.crash_at = crash_at
        self.begun: list[int] = []
        self.weights_at_end: dict[int, list[np.ndarray]] = {}
        self.weights_at_begin: dict[int, list[np.ndarray]] = {}

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.crash_at:
            raise Crash(epoch)
        self.begun.append(epoch)
        self.weights_at_begin[epoch] = self.model.get_weights()

    def on_epoch_end(self, epoch, logs=None):
        self.weights_at_end[epoch] = self.model.get_weights()


def tiny_model(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    image = keras.Input((8, 8, 3), name="image")
    features = keras.layers.Conv2D(4, 3, activation="relu", name="conv_7b_ac")(image)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    emotion = keras.layers.Dense(CLASSES, activation="softmax", name="emotion")(pooled)
    return keras.Model(image, {"emotion": emotion})


def dataset() -> tf.data.Dataset:
    rng = np.random.default_rng(0)
    images = rng.normal(size=(12, 8, 8, 3)).astype(np.float32)
    labels = np.arange(12) % CLASSES
    return tf.data.Dataset.from_tensor_slices((images, {"emotion": tf.one_hot(labels, CLASSES)})).batch(4)


def tiny_cfg(params, **update):
    """train.irv2 for the stand-in model: 3 epochs of 3 batches of 4, on the CPU; ``update`` over that."""
    base = {"epochs": 3, "finetune_epochs": 0, "batch_size": 4, "early_stopping_patience": 100,
            "reduce_lr_patience": 100, "mixed_precision": False, "xla": False}  # fmt: skip
    return params.train["irv2"].model_copy(update={**base, **update})


@pytest.fixture
def cfg(params):
    return tiny_cfg(params)


def _fit(monkeypatch, cfg, state: Path, recorder: Recorder, seed: int) -> list[dict]:
    monkeypatch.setattr(callbacks, "for_phase", lambda *args: [*FOR_PHASE(*args), recorder])
    return loop.fit(tiny_model(seed), cfg, dataset(), dataset(), state, state.parent / "live")


def test_crashed_phase_resumes_after_last_finished_epoch(monkeypatch, cfg, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    first = Recorder(crash_at=1)
    with pytest.raises(Crash):
        _fit(monkeypatch, cfg, state, first, seed=1)
    assert [h["epoch"] for h in callbacks.load_history(state)] == [1]

    second = Recorder()
    history = _fit(monkeypatch, cfg, state, second, seed=2)  # another seed: a fresh model starts elsewhere
    assert second.begun == [1, 2], "the rerun repeated or skipped epochs"
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert [h["epoch"] for h in callbacks.load_history(state)] == [1, 2, 3]
    # it carries on from the weights the first run finished epoch 1 with, not from the fresh model's
    restored, finished = second.weights_at_begin[1], first.weights_at_end[0]
    assert all(np.array_equal(a, b) for a, b in zip(restored, finished, strict=True))
    assert (state / "scratch.done.weights.h5").exists()


def test_crash_in_first_of_two_phases_keeps_second_phase_epochs(monkeypatch, cfg, tmp_path):
    # regression: BackupAndRestore's restored epoch stayed on the model and phase 2 restarted at phase 1's epoch
    cfg = cfg.model_copy(update={"weights": "pretrained.weights.h5", "finetune_epochs": 2, "unfreeze_top_layers": 1})
    state = tmp_path / "state"
    state.mkdir()
    with pytest.raises(Crash):
        _fit(monkeypatch, cfg, state, Recorder(crash_at=1), seed=1)
    second = Recorder()
    history = _fit(monkeypatch, cfg, state, second, seed=2)
    assert second.begun == [1, 2, 3, 4]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5]


def test_crash_in_second_phase_does_not_rerun_the_first(monkeypatch, cfg, tmp_path):
    cfg = cfg.model_copy(update={"weights": "pretrained.weights.h5", "finetune_epochs": 2, "unfreeze_top_layers": 1})
    state = tmp_path / "state"
    state.mkdir()
    with pytest.raises(Crash):
        _fit(monkeypatch, cfg, state, Recorder(crash_at=4), seed=1)
    done = state / "head.done.weights.h5"
    with h5py.File(done) as weights:  # the network's weights alone: the next phase compiles a fresh optimizer
        assert "layers" in weights and "optimizer" not in weights
    second = Recorder()
    history = _fit(monkeypatch, cfg, state, second, seed=2)
    assert second.begun == [4]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5]


def test_state_of_other_inputs_is_discarded(cfg, params, tmp_path):
    index = tmp_path / "index.csv"
    index.write_text("path,split,label\na.png,train,joy\n")
    key = train.fingerprint(cfg, params, index)
    assert train.fingerprint(cfg.model_copy(update={"learning_rate": 0.5}), params, index) != key
    index.write_text("path,split,label\nb.png,train,joy\n")
    assert train.fingerprint(cfg, params, index) != key

    root = tmp_path / "state"
    (keyed_folder(root, key) / "history.json").write_text("[]")
    assert (keyed_folder(root, key) / "history.json").exists(), "same inputs: the state is kept"
    keyed_folder(root, "other")
    assert not (root / key).exists(), "new inputs: stale state removed"


def test_backup_cut_short_by_the_kill_falls_back_to_the_one_before(monkeypatch, cfg, tmp_path):
    # a kill while BackupAndRestore writes its weights (seconds for the real models) leaves a truncated file
    state = tmp_path / "state"
    state.mkdir()
    with pytest.raises(Crash):
        _fit(monkeypatch, cfg, state, Recorder(crash_at=2), seed=1)
    latest = state / "scratch" / "backup" / "latest.weights.h5"
    # the previous backup was moved aside (callbacks.KeepPreviousBackup), not copied; the best weights carry no
    # optimizer slots, the backups do (Adam: two per weight)
    assert latest.with_name("latest.weights.h5.bkp").exists()
    assert callbacks.best_weights(state).stat().st_size < latest.stat().st_size
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])
    second = Recorder()
    history = _fit(monkeypatch, cfg, state, second, seed=2)
    assert second.begun == [1, 2], "the rerun should repeat the epoch whose backup was lost, and only that"
    assert [h["epoch"] for h in history] == [1, 2, 3]
