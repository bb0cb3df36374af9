"""One trial: train a configuration the way the train stage does, for a short budget, and score it.

The score is the validation macro F1 of the trial's last epoch, computed from the emotion output with the same
function as every other stage, so both models (IRv2 logs `val_macro_f1`, the U-Net `val_emotion_macro_f1`) are
judged alike. Nothing is checkpointed: a trial is short, and a killed one is simply run again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras

from pipeline import config
from pipeline.config import Params, TrainConfig
from pipeline.models import build
from pipeline.training import loop, runtime
from pipeline.training.metrics import macro_f1

# (train.<model> overrides, epochs per phase) -> validation macro F1
Objective = Callable[[dict[str, Any], int], float]


def trial_config(base: TrainConfig, overrides: dict[str, Any], epochs: int, where: str) -> TrainConfig:
    """``base`` with a trial's hyperparameters, each training phase cut to ``epochs``."""
    budget = {"epochs": epochs, "finetune_epochs": epochs if base.finetune_epochs else 0}
    return config.replace(base, {**overrides, **budget}, where)


def objective(params: Params, name: str, data: Path) -> Objective:
    base = params.train[name]

    def score(overrides: dict[str, Any], epochs: int) -> float:
        cfg = trial_config(base, overrides, epochs, f"train.{name}")
        keras.backend.clear_session()  # the previous trial's graphs would otherwise pile up in memory
        strategy = runtime.configure(cfg, params.seed)
        train_data, val_data, val_labels = loop.datasets(params, cfg, data)
        with strategy.scope():
            model = build(cfg, params.image_size, len(params.classes))
        for phase in loop.phases(cfg):
            loop.set_trainable(model, phase.unfreeze)
            loop.compile_model(model, cfg, phase.learning_rate)
            model.fit(train_data, epochs=phase.epochs, verbose=2)
        probabilities = model.predict(val_data, verbose=0)["emotion"]
        return macro_f1(val_labels, probabilities, len(params.classes))

    return score
