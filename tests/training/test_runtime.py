"""Unit tests of how a training is traced (pipeline.training.loop.build_training_state).

Under the default distribution strategy Keras creates a model's optimizer slots and metric variables while it traces
the training step, and TensorFlow then traces the step a second time (for InceptionResNetV2, about 25 s more per fit
on 2 CPU cores); loop.fit creates them beforehand. A tiny two-output model (the U-Net's outputs, emotion and
reconstruction, so the per-output loss trackers are there too) goes through the real loop.fit.
"""

from __future__ import annotations

import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from pipeline.training import loop, runtime
from tests.workspace import REPO

CLASSES = 6


def tiny_unet() -> keras.Model:
    image = keras.Input((8, 8, 3), name="image")
    features = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_7b_ac")(image)
    reconstruction = keras.layers.Conv2D(3, 1, name="reconstruction")(features)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    emotion = keras.layers.Dense(CLASSES, activation="softmax", name="emotion")(pooled)
    return keras.Model(image, {"emotion": emotion, "reconstruction": reconstruction})


def dataset() -> tf.data.Dataset:
    images = np.random.default_rng(0).normal(size=(8, 8, 8, 3)).astype(np.float32)
    targets = {"emotion": tf.one_hot(np.arange(8) % CLASSES, CLASSES), "reconstruction": images}
    return tf.data.Dataset.from_tensor_slices((images, targets)).batch(4)


def variables_made_in_a_trace(params, tmp_path) -> list[str]:
    cfg = params.train["irv2_unet"].model_copy(
        update={"epochs": 1, "finetune_epochs": 0, "early_stopping_patience": 10, "reduce_lr_patience": 10}
    )
    assert cfg.unet is not None
    strategy = runtime.configure(cfg, params.seed)
    made = []

    def creator(next_creator, **kwargs):
        if tf.inside_function():
            made.append(kwargs.get("name"))
        return next_creator(**kwargs)

    state = tmp_path / "state"
    state.mkdir()
    with tf.variable_creator_scope(creator), strategy.scope():
        history = loop.fit(tiny_unet(), cfg, dataset(), dataset(), state, tmp_path / "live")
    assert [h["epoch"] for h in history] == [1] and np.isfinite(history[0]["loss"])
    return made


def test_fit_creates_no_variable_inside_a_traced_function(params, tmp_path):
    assert variables_made_in_a_trace(params, tmp_path) == []


def test_without_it_keras_makes_them_in_the_trace(params, tmp_path, monkeypatch):
    """Why build_training_state is there (and proof that the check above sees Keras's variables): without it, the
    optimizer's slots are made while the step is traced. If a Keras release stops doing so, this fails and
    build_training_state can go."""
    monkeypatch.setattr(loop, "build_training_state", lambda model: None)
    made = variables_made_in_a_trace(params, tmp_path)
    assert any("momentum" in name for name in made) and any("velocity" in name for name in made), made


MIRRORED_TRAIN = """
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from pipeline.config import load
from pipeline.stages import train
from pipeline.training import loop, runtime
from tests.training.test_runtime import CLASSES, dataset, tiny_unet

params = load(Path("params.yaml"))
params.train["irv2_unet"] = params.train["irv2_unet"].model_copy(update={"epochs": 2, "finetune_epochs": 0})
out = Path(sys.argv[1])
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
configure = runtime.configure
runtime.configure = lambda cfg, seed: (configure(cfg, seed), strategy)[1]
loop.datasets = lambda *args, **kwargs: (dataset(), dataset(), np.arange(8) % CLASSES)
train.build = lambda *args: tiny_unet()
(out / "data").mkdir()
(out / "data" / "index.csv").write_text("path,label,split")
args = SimpleNamespace(hparams=None, data=out / "data", state=out / "state", live=out / "live",
                       out=out / "model.keras", metrics=out / "metrics.json")
metrics = train.run(params, "irv2_unet", args)
print("replicas", strategy.num_replicas_in_sync, "epochs", metrics["epochs_run"])
"""


@pytest.mark.slow
def test_the_train_stage_runs_under_a_mirrored_strategy(tmp_path):
    """Several GPUs: train.run under a MirroredStrategy over two replicas (two logical CPUs here). Each phase's model
    must be made and compiled in the strategy's scope; one made outside it failed at the first step with
    "tuple indices must be integers or slices, not MirroredVariable"."""
    done = subprocess.run(
        [sys.executable, "-c", MIRRORED_TRAIN, str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "replicas 2 epochs 2" in done.stdout
    assert (tmp_path / "model.keras").stat().st_size > 0
