"""Which weights to keep: the Test macro F1 of the weights each selection rule would keep, from one training that
records every epoch (README, "What a training keeps").

One training of ``MODEL`` (train.<model> of the workspace's params.yaml, with its seed replaced), run as the train
stage runs it (its datasets, BatchNormalization statistics recomputed before each validation), with the learning-rate
schedule given; after every epoch it scores, on validation and on Test, the weights as they are and a per-step
exponential moving average of them (statistics recomputed for it). Test is read here only to compare the rules: no
rule sees it. Needs the workspace's data/manifest.csv and data/balanced (`dvc repro augment`).

    python docs/studies/selection.py WORKSPACE MODEL SEED EPOCHS plateau|cosine OUT.jsonl
    python docs/studies/selection.py --rules OUT.jsonl ...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from sklearn.metrics import f1_score

from pipeline import config
from pipeline.evaluation import scoring
from pipeline.models import build
from pipeline.serving import inference
from pipeline.training import batchnorm, loop, runtime

EMA = 0.98  # per optimizer step


def record(workspace: Path, name: str, seed: int, epochs: int, schedule: str, out: Path) -> None:
    params = config.load(workspace / "params.yaml").model_copy(update={"seed": seed})
    cfg = params.train[name].model_copy(update={"epochs": epochs, "lr_schedule": schedule})
    runtime.configure(cfg, seed)
    train, val, val_labels = loop.datasets(params, cfg, workspace / "data/balanced")
    val_images = np.concatenate([element[0].numpy() for element in val])
    rows, test_images, _ = scoring.test_split(
        pd.read_csv(workspace / "data/manifest.csv"), workspace / "data/raw", params
    )
    test_labels = scoring.labels(rows, params)
    model = build(cfg, params.image_size, len(params.classes))
    loop.compile_model(model, cfg, cfg.learning_rate, epochs * loop.steps_per_epoch(train))
    loop.build_training_state(model)
    net = keras.Model(model.input, model.output)
    weights = model.trainable_variables
    average = [tf.Variable(v) for v in weights]
    statistics = batchnorm.layers(model)
    spec = tf.TensorSpec((None, *model.inputs[0].shape[1:]), model.inputs[0].dtype)
    forward = tf.function(lambda x: model(x, training=True), input_signature=[spec])

    @tf.function
    def update():
        for v, a in zip(weights, average, strict=True):
            a.assign(EMA * a + (1.0 - EMA) * v)

    def scores() -> dict:
        pv = np.concatenate(
            [inference.emotion(net.predict_on_batch(val_images[i : i + 32])) for i in range(0, len(val_images), 32)]
        )
        pt = inference.classify(net, test_images, 32)
        loss = float(-np.mean(np.log(np.clip(pv[np.arange(len(val_labels)), val_labels], 1e-7, 1))))
        return {"val_f1": float(f1_score(val_labels, pv.argmax(1), average="macro")), "val_ce": loss,
                "test_f1": float(f1_score(test_labels, pt.argmax(1), average="macro"))}  # fmt: skip

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            update()

        def on_epoch_end(self, epoch, logs=None):
            entry = {"epoch": epoch + 1, "raw": scores()}
            kept = [v.numpy() for v in weights]
            moments = [(b.moving_mean.numpy(), b.moving_variance.numpy()) for b in statistics]
            for v, a in zip(weights, average, strict=True):
                v.assign(a)
            batchnorm.recompute(model, train, cfg.bn_recompute_batches, forward)
            entry["ema"] = scores()
            for v, k in zip(weights, kept, strict=True):
                v.assign(k)
            for b, (mean, variance) in zip(statistics, moments, strict=True):
                b.moving_mean.assign(mean)
                b.moving_variance.assign(variance)
            with out.open("a") as file:
                file.write(json.dumps(entry) + "\n")
            print(json.dumps(entry), flush=True)

    plateau = [keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=cfg.reduce_lr_patience)]
    model.fit(train, validation_data=val, epochs=epochs, shuffle=False, verbose=0,
              callbacks=[batchnorm.Recompute(train, cfg.bn_recompute_batches, False), Record(),
                         *(plateau if schedule == "plateau" else [])])  # fmt: skip


def rules(entries: list[dict], weights: str, patience: int = 4) -> dict[str, float]:
    """The Test macro F1 of the epoch each rule keeps."""
    val = np.array([e[weights]["val_f1"] for e in entries])
    loss = np.array([e[weights]["val_ce"] for e in entries])
    test = np.array([e[weights]["test_f1"] for e in entries])
    best, stop = -1.0, len(entries)
    for i, v in enumerate(val):  # Keras' EarlyStopping on validation macro F1
        if v > best:
            best, at = v, i
        elif i - at >= patience:
            stop = i + 1
            break
    smoothed = np.convolve(val, np.ones(3) / 3, mode="valid")
    return {
        "best_val_f1_early_stop": test[int(np.argmax(val[:stop]))],
        "lowest_val_loss": test[int(np.argmin(loss))],
        "best_3_epoch_mean_val_f1": test[int(np.argmax(smoothed)) + 2],
        "last": test[-1],
        "best_on_test": test.max(),
    }


if __name__ == "__main__":
    if sys.argv[1] == "--rules":
        for path in sys.argv[2:]:
            entries = [json.loads(line) for line in Path(path).read_text().splitlines()]
            for weights in ("raw", "ema"):
                print(path, weights, {k: round(float(v), 3) for k, v in rules(entries, weights).items()})
    else:
        workspace, name, seed, epochs, schedule, out = sys.argv[1:7]
        record(Path(workspace), name, int(seed), int(epochs), schedule, Path(out))
