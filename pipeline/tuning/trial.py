"""One trial: train a configuration the way the train stage does, for a short budget, and score it.

The score is the validation macro F1 after the trial's training, computed from the emotion output with the same
function as every other stage, so both models (IRv2 logs `val_macro_f1`, the U-Net `val_emotion_macro_f1`) are
judged alike. Nothing is checkpointed: a trial is short, and a killed one is simply run again.

A trial's budget is its epochs (tune.epochs_per_trial, or Hyperband's) and, when tune.trial_time_s is set, its wall
time: training stops at whichever runs out first, mid-epoch if need be, and the trial is scored on what it reached.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from pipeline import config
from pipeline.config import Params, TrainConfig
from pipeline.models import build
from pipeline.training import batchnorm, loop, runtime
from pipeline.training.metrics import macro_f1

# The train.<model> keys a trial reads. dvc.yaml lists exactly these under tune@<model>'s params and the search key
# hashes exactly these, so a knob that trials do not read reruns no search (tests/tuning/test_trial.py checks both).
READS = (
    "architecture",
    "weights",
    "head_units",
    "dropout",
    "optimizer",
    "learning_rate",
    "momentum",
    "weight_decay",
    "batch_size",
    "finetune_learning_rate",
    "unfreeze_top_layers",
    "label_smoothing",
    "class_weight",
    "mixed_precision",
    "xla",
    "run_eagerly",
    "bn_recompute_batches",
    "lr_schedule",
    "mixup",
    "random_flip",
    "random_shift",
    "unet",
)
# ...and those it does not: the epochs come from the tune budget, and a trial fits without the train stage's early
# stopping and learning-rate schedule (too few epochs for either to act)
IGNORES = ("epochs", "finetune_epochs", "early_stopping_patience", "reduce_lr_patience", "keep")


@dataclass(frozen=True)
class Outcome:
    score: float  # validation macro F1
    cut_short: bool = False  # the time budget stopped training before the trial's epochs were done


# (train.<model> overrides, epochs per phase) -> the trial's outcome
Objective = Callable[[dict[str, Any], int], Outcome]


class TimeBudget(keras.callbacks.Callback):
    """Stops a fit once ``deadline`` (a ``clock()`` value; None: never) has passed.

    Checked after every batch, not every epoch: one epoch of IRv2 on the full data on a CPU can outlast the whole
    budget. One instance serves all the phases of a trial, so the deadline covers the trial, not each fit.
    """

    def __init__(self, deadline: float | None, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.deadline = deadline
        self.clock = clock
        self.cut_short = False

    def expired(self) -> bool:
        return self.deadline is not None and self.clock() >= self.deadline

    def on_train_batch_end(self, batch, logs=None):
        if self.expired():
            self.cut_short = True
            self.model.stop_training = True


def trial_config(base: TrainConfig, overrides: dict[str, Any], epochs: int, where: str) -> TrainConfig:
    """``base`` with a trial's hyperparameters, each training phase ``epochs`` long.

    A pretrained model always gets its fine-tuning phase, whatever train.<model>.finetune_epochs says: the space
    holds unfreeze_top_layers, which only fine-tuning can rank, and reading finetune_epochs (even whether it is 0)
    would make every change of it rerun the search.
    """
    budget = {"epochs": epochs, "finetune_epochs": epochs if base.weights is not None else 0}
    return config.replace(base, {**overrides, **budget}, where)


def objective(params: Params, name: str, data: Path) -> Objective:
    base = params.train[name]
    tune = params.tune

    def score(overrides: dict[str, Any], epochs: int) -> Outcome:
        started = time.monotonic()
        budget = TimeBudget(None if tune.trial_time_s is None else started + tune.trial_time_s)
        cfg = trial_config(base, overrides, epochs, f"train.{name}")
        keras.backend.clear_session()  # the previous trial's graphs would otherwise pile up in memory
        strategy = runtime.configure(cfg, params.seed)
        train_data, val_data, val_labels = loop.datasets(params, cfg, data, train_per_class=tune.subset_per_class)
        with strategy.scope():  # compiled and fitted in it too: a MirroredStrategy's model must be
            model = build(cfg, params.image_size, len(params.classes))
            for phase in loop.phases(cfg):
                if budget.expired():  # no time left for the fine-tuning phase
                    budget.cut_short = True
                    break
                loop.set_trainable(model, phase.unfreeze)
                loop.compile_model(model, cfg, phase.learning_rate, phase.epochs * loop.steps_per_epoch(train_data))
                loop.build_training_state(model)
                model.fit(
                    loop.optimizer_data(train_data, cfg, params.seed),
                    epochs=phase.epochs,
                    shuffle=False,
                    verbose=2,
                    callbacks=[budget],
                )  # see loop.fit
            batchnorm.recompute(model, train_data, cfg.bn_recompute_batches)  # as the train stage validates
            probabilities = model.predict(val_data, verbose=0)["emotion"]
        return Outcome(macro_f1(val_labels, probabilities, len(params.classes)), budget.cut_short)

    return score
