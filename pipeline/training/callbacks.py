"""Training callbacks: history that survives a kill, best-weights checkpoint, early stopping, LR schedule, dvclive."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import tensorflow as tf
from dvclive import Live

from pipeline import atomic
from pipeline.config import TrainConfig
from pipeline.training import batchnorm

HISTORY = "history.json"
BEST = "best.weights.h5"


def load_history(state: Path) -> list[dict]:
    path = state / HISTORY
    return json.loads(path.read_text()) if path.exists() else []


def monitor(model: keras.Model) -> str:
    """The validation macro F1 as Keras names it: prefixed by the output only when the model has several."""
    return "val_emotion_macro_f1" if len(model.outputs) > 1 else "val_macro_f1"


def best_epoch(history: list[dict], keep: str = "best") -> int:
    """The epoch whose weights training kept (``keep``: TrainConfig.keep); 0 before any."""
    if not history:
        return 0
    if keep == "last":
        return max(h["epoch"] for h in history)
    return max(history, key=lambda h: h["val_macro_f1"])["epoch"]


def best_weights(state: Path) -> Path:
    return state / BEST


class Progress(keras.callbacks.Callback):
    """Per finished epoch: keep the weights (the best on validation macro F1, or with ``keep="last"`` the latest), the
    history, and the dvclive curves.

    Writes are atomic and happen before BackupAndRestore's own backup, so a kill at any point leaves a state
    from which the rerun repeats at most the epoch that was cut short.
    """

    def __init__(self, state: Path, live_dir: Path, history: list[dict], keep: str = "best"):
        super().__init__()
        self.state = state
        self.keep = keep
        self.history = history
        self.best = max((h["val_macro_f1"] for h in history), default=-1.0)
        self.live = Live(str(live_dir), resume=bool(history), save_dvc_exp=False, dvcyaml=None)

    def on_epoch_begin(self, epoch, logs=None):
        atomic.write_json(self.state / "running.json", {"epoch": epoch})

    def on_epoch_end(self, epoch, logs=None):
        # one naming for both models: the U-Net's Keras logs say "val_emotion_macro_f1" where IRv2's say "val_macro_f1"
        logs = {k.replace("emotion_", ""): float(v) for k, v in (logs or {}).items()}
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        if self.keep == "last" or logs["val_macro_f1"] > self.best:
            self.best = max(self.best, logs["val_macro_f1"])
            with atomic.target(self.state / BEST) as tmp:
                # the network's weights only: the end of training restores them, never the optimizer's slots
                # (Adam's two per weight would make the file, and every write of it, three times larger)
                keras.Model(self.model.input, self.model.output).save_weights(tmp)
        self.history[:] = [h for h in self.history if h["epoch"] != epoch + 1] + [{"epoch": epoch + 1, **logs}]
        atomic.write_json(self.state / HISTORY, self.history)
        self.live.step = epoch
        for key, value in logs.items():
            self.live.log_metric(key, value)
        self.live.make_summary()

    def on_train_end(self, logs=None):
        self.live.end()


class KeepPreviousBackup(keras.callbacks.Callback):
    """Moves BackupAndRestore's last backup aside before it writes the next one, where its ``double_checkpoint``
    would copy it: a rename instead of reading and writing the whole file (the weights with the optimizer's slots,
    about 650 MB for InceptionResNetV2 at 75 px) every epoch. A kill mid-write still finds the previous backup, the
    one BackupAndRestore falls back to. The two file names are BackupAndRestore's own; the guarding test is
    tests/training/test_resume.py::test_backup_cut_short_by_the_kill_falls_back_to_the_one_before."""

    LATEST, PREVIOUS = "latest.weights.h5", "latest.weights.h5.bkp"

    def __init__(self, backup_dir: Path):
        super().__init__()
        self.backup_dir = backup_dir

    def on_epoch_end(self, epoch, logs=None):
        latest = self.backup_dir / self.LATEST
        if latest.exists():
            latest.replace(self.backup_dir / self.PREVIOUS)


def for_phase(
    model: keras.Model,
    cfg: TrainConfig,
    state: Path,
    phase: str,
    live_dir: Path,
    history: list[dict],
    train: tf.data.Dataset,
) -> list:
    schedule = []
    if cfg.keep == "best":  # with keep: last the phase runs all its epochs, as a schedule that ends at 0 needs
        schedule.append(
            keras.callbacks.EarlyStopping(monitor=monitor(model), mode="max", patience=cfg.early_stopping_patience)
        )
    if cfg.lr_schedule == "plateau":  # a cosine schedule is the optimizer's own (loop.schedule)
        schedule.append(
            keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=cfg.reduce_lr_patience)
        )
    return [
        # first: its on_test_begin sets the statistics that validation, and then every callback below, sees
        batchnorm.Recompute(train, cfg.bn_recompute_batches, cfg.run_eagerly),
        Progress(state, live_dir, history, cfg.keep),
        *schedule,
        # its writes are not atomic: keep the previous backup too, so that a kill mid-write costs an epoch rather
        # than leaving a truncated file that fails every rerun
        KeepPreviousBackup(state / phase / "backup"),
        keras.callbacks.BackupAndRestore(str(state / phase / "backup"), double_checkpoint=True),
    ]
