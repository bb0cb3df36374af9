"""Training callbacks: history that survives a kill, best-weights checkpoint, early stopping, LR schedule, dvclive."""

from __future__ import annotations

import json
from pathlib import Path

import keras
from dvclive import Live

from pipeline import atomic
from pipeline.config import TrainConfig

MONITOR = "val_emotion_macro_f1"
HISTORY = "history.json"
BEST = "best.weights.h5"


def load_history(state: Path) -> list[dict]:
    path = state / HISTORY
    return json.loads(path.read_text()) if path.exists() else []


def best_epoch(history: list[dict]) -> int:
    return max(history, key=lambda h: h.get(MONITOR, -1.0))["epoch"] if history else 0


def best_weights(state: Path) -> Path:
    return state / BEST


class Progress(keras.callbacks.Callback):
    """Per finished epoch: keep the best weights (on validation macro F1), the history, and the dvclive curves.

    Writes are atomic and happen before BackupAndRestore's own backup, so a kill at any point leaves a state
    from which the rerun repeats at most the epoch that was cut short.
    """

    def __init__(self, state: Path, live_dir: Path, history: list[dict]):
        super().__init__()
        self.state = state
        self.history = history
        self.best = max((h.get(MONITOR, -1.0) for h in history), default=-1.0)
        self.live = Live(str(live_dir), resume=bool(history), save_dvc_exp=False, dvcyaml=None)

    def on_epoch_begin(self, epoch, logs=None):
        atomic.write_json(self.state / "running.json", {"epoch": epoch})

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        if logs.get(MONITOR, -1.0) > self.best:
            self.best = logs[MONITOR]
            with atomic.target(self.state / BEST) as tmp:
                self.model.save_weights(tmp)
        self.history[:] = [h for h in self.history if h["epoch"] != epoch + 1] + [{"epoch": epoch + 1, **logs}]
        atomic.write_json(self.state / HISTORY, self.history)
        self.live.step = epoch
        for key, value in logs.items():
            self.live.log_metric(key, value)
        self.live.make_summary()

    def on_train_end(self, logs=None):
        self.live.end()


def for_phase(cfg: TrainConfig, state: Path, phase: str, live_dir: Path, history: list[dict]) -> list:
    return [
        Progress(state, live_dir, history),
        keras.callbacks.EarlyStopping(monitor=MONITOR, mode="max", patience=cfg.early_stopping_patience),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=cfg.reduce_lr_patience),
        keras.callbacks.BackupAndRestore(str(state / phase / "backup")),
    ]
