"""Stage `train@<model>`: two-phase training of one model on the balanced data, resumable after a kill.

Phase 1 trains the head on a frozen pretrained base (with `weights: null`, the whole network from scratch); phase 2
unfreezes the top layers at a lower learning rate. Each finished epoch is backed up (BackupAndRestore) and each
finished phase recorded in a state folder keyed to the inputs, so a rerun after a crash picks up where it stopped
and a rerun with new params or data starts afresh.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shutil
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from pipeline import atomic, config
from pipeline.config import Params, TrainConfig
from pipeline.data import tfdata
from pipeline.models import build
from pipeline.training import callbacks, runtime
from pipeline.training.metrics import classification_metrics


@dataclasses.dataclass(frozen=True)
class Phase:
    name: str
    epochs: int
    learning_rate: float
    unfreeze: int | None  # None: everything trainable; 0: backbone frozen; N: top N backbone layers


def phases(cfg: TrainConfig) -> list[Phase]:
    if cfg.weights is None:
        return [Phase("scratch", cfg.epochs, cfg.learning_rate, None)]
    plan = [Phase("head", cfg.epochs, cfg.learning_rate, 0)]
    if cfg.finetune_epochs:
        plan.append(Phase("finetune", cfg.finetune_epochs, cfg.finetune_learning_rate, cfg.unfreeze_top_layers))
    return plan


def set_trainable(model: keras.Model, unfreeze: int | None) -> None:
    backbone = model.get_layer("backbone")
    backbone.trainable = unfreeze != 0
    if unfreeze:
        for i, layer in enumerate(backbone.layers):
            # keep BatchNorm statistics frozen in fine-tuning: small batches would wreck the pretrained ones
            top = i >= len(backbone.layers) - unfreeze
            layer.trainable = top and not isinstance(layer, keras.layers.BatchNormalization)


def compile_model(model: keras.Model, cfg: TrainConfig, learning_rate: float) -> None:
    if cfg.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(learning_rate, momentum=cfg.momentum)
    else:
        optimizer = keras.optimizers.Adam(learning_rate)
    loss = {"emotion": keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing)}
    weights = {"emotion": 1.0}
    if cfg.unet is not None:
        loss["reconstruction"] = keras.losses.MeanSquaredError()
        weights["reconstruction"] = cfg.unet.reconstruction_weight
    model.compile(
        optimizer=optimizer,
        loss=loss,
        loss_weights=weights,
        jit_compile=cfg.xla,
        run_eagerly=cfg.run_eagerly,
        metrics={
            "emotion": [
                keras.metrics.CategoricalAccuracy(name="accuracy"),
                keras.metrics.F1Score(average="macro", name="macro_f1"),
            ]
        },
    )


def fingerprint(cfg: TrainConfig, params: Params, index_file: Path) -> str:
    """What the training state depends on: a changed knob or dataset must not resume stale weights."""
    blob = json.dumps([cfg.model_dump(), params.image_size, params.seed, params.classes], sort_keys=True)
    return hashlib.sha256(blob.encode() + index_file.read_bytes()).hexdigest()[:16]


def datasets(params: Params, cfg: TrainConfig, data: Path) -> tuple[tf.data.Dataset, tf.data.Dataset, np.ndarray]:
    index = pd.read_csv(data / "index.csv")
    train_paths, train_labels = tfdata.balanced_split(data, index, "train", params.classes)
    val_paths, val_labels = tfdata.balanced_split(data, index, "val", params.classes)
    n = len(params.classes)
    weights = tfdata.class_weights(train_labels, n) if cfg.class_weight == "balanced" else None
    recon = cfg.unet is not None
    train = tfdata.labelled(
        tfdata.image_files(train_paths, params.image_size),
        train_labels,
        n,
        cfg.batch_size,
        shuffle_seed=params.seed,
        reconstruction=recon,
        weights=weights,
    )
    val = tfdata.labelled(
        tfdata.image_files(val_paths, params.image_size), val_labels, n, cfg.batch_size, reconstruction=recon
    )
    return train, val, val_labels


def fit(
    model: keras.Model, cfg: TrainConfig, train: tf.data.Dataset, val: tf.data.Dataset, state: Path, live_dir: Path
) -> list[dict]:
    """Run the phases not yet finished; return the history (one dict per epoch) over all phases."""
    history = callbacks.load_history(state)
    offset = 0
    for phase in phases(cfg):
        done = state / f"{phase.name}.done.weights.h5"
        set_trainable(model, phase.unfreeze)
        compile_model(model, cfg, phase.learning_rate)
        if done.exists():
            model.load_weights(done)
        else:
            # BackupAndRestore leaves the epoch it restored on the model and Keras prefers that to initial_epoch:
            # without this, a run resumed in phase 1 would start phase 2 back at phase 1's epochs
            model._initial_epoch = None
            model.fit(
                train,
                validation_data=val,
                initial_epoch=offset,
                epochs=offset + phase.epochs,
                verbose=2,
                callbacks=callbacks.for_phase(model, cfg, state, phase.name, live_dir, history),
            )
            with atomic.target(done) as tmp:
                model.save_weights(tmp)
        offset += phase.epochs
    return history


def tuned(cfg: TrainConfig, hparams: Path | None) -> TrainConfig:
    """``cfg`` with the tune stage's best hyperparameters (a JSON object of TrainConfig fields) applied over it."""
    return cfg if hparams is None else config.replace(cfg, json.loads(hparams.read_text()), str(hparams))


def run(
    params: Params,
    name: str,
    data: Path,
    model_path: Path,
    metrics_path: Path,
    live_dir: Path,
    state_root: Path,
    hparams: Path | None = None,
) -> dict:
    cfg = tuned(params.train[name], hparams)
    started = time.time()
    strategy = runtime.configure(cfg, params.seed)
    state = runtime.state_dir(state_root / name, fingerprint(cfg, params, data / "index.csv"))
    train, val, val_labels = datasets(params, cfg, data)
    with strategy.scope():
        model = build(cfg, params.image_size, len(params.classes))
    history = fit(model, cfg, train, val, state, live_dir)
    model.load_weights(callbacks.best_weights(state))
    probabilities = model.predict(val, verbose=0)["emotion"]
    metrics = {
        "val": classification_metrics(val_labels, probabilities, params.classes),
        "best_epoch": callbacks.best_epoch(history),
        "epochs_run": len(history),
        "train_seconds": round(time.time() - started, 1),
    }
    with atomic.target(model_path) as tmp:
        model.save(tmp)
    atomic.write_json(metrics_path, metrics)
    shutil.rmtree(state, ignore_errors=True)  # finished: the next run with these inputs is DVC's to skip
    return metrics


def main(params: Params, argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline train", description=__doc__)
    parser.add_argument("--model", required=True, choices=sorted(params.train))
    parser.add_argument("--data", type=Path, default=Path("data/balanced"))
    parser.add_argument("--out", type=Path, help="default: models/<model>/model.keras")
    parser.add_argument("--metrics", type=Path, help="default: metrics/train/<model>.json")
    parser.add_argument("--live", type=Path, help="dvclive folder, default: dvclive/<model>")
    parser.add_argument("--state", type=Path, default=Path(".train-state"), help="resume state (not a DVC output)")
    parser.add_argument("--hparams", type=Path, help="tuned hyperparameters over train.<model> (tune stage output)")
    args = parser.parse_args(argv)
    name = args.model
    metrics = run(
        params,
        name,
        args.data,
        args.out or Path(f"models/{name}/model.keras"),
        args.metrics or Path(f"metrics/train/{name}.json"),
        args.live or Path(f"dvclive/{name}"),
        args.state,
        args.hparams,
    )
    print(
        f"train {name}: validation macro F1 {metrics['val']['macro_f1']:.3f}, "
        f"accuracy {metrics['val']['accuracy']:.3f}, best epoch {metrics['best_epoch']}"
    )
