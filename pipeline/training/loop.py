"""The training loop that the train stage, the tune stage's trials and the benchmark share: the phases of a
training, which backbone layers each phase trains, the compiled losses and metrics, the input pipelines, and the
resumable fit (every finished epoch backed up, every finished phase recorded in a state folder).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from pipeline import atomic
from pipeline.config import Params, TrainConfig
from pipeline.data import tfdata
from pipeline.models.backbone import backbone_layers
from pipeline.training import callbacks

# variable names (Keras' short names) that weight decay leaves alone: the offsets of every layer and
# BatchNormalization's scale and offset, which set a unit's level rather than carry a pattern
NO_DECAY = ("bias", "gamma", "beta")


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
    layers = backbone_layers(model)
    for i, layer in enumerate(layers):
        if unfreeze is None:
            layer.trainable = True
            continue
        top = unfreeze > 0 and i >= len(layers) - unfreeze
        # keep BatchNorm statistics frozen in fine-tuning: small batches would wreck the pretrained ones
        layer.trainable = top and not isinstance(layer, keras.layers.BatchNormalization)


def schedule(cfg: TrainConfig, learning_rate: float, steps: int) -> float | keras.optimizers.schedules.CosineDecay:
    """The learning rate of a phase of ``steps`` optimizer steps: ``learning_rate`` as it is (``lr_schedule:
    plateau``, which a callback lowers), or a half cosine from it to 0 at the phase's last step (``cosine``). The
    schedule reads the optimizer's step count, which BackupAndRestore restores, so a resumed phase goes on where it
    was."""
    if cfg.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, steps))
    return learning_rate


def steps_per_epoch(data: tf.data.Dataset) -> int:
    """Batches in one pass over ``data`` (tfdata.labelled's pipelines know it without reading an image)."""
    known = int(data.cardinality())
    if known < 0:
        raise ValueError("the training dataset's length is unknown, so a learning-rate schedule cannot span it")
    return known


def compile_model(model: keras.Model, cfg: TrainConfig, learning_rate: float, steps: int = 0) -> None:
    """Compile for a phase of ``steps`` optimizer steps (only ``lr_schedule: cosine`` reads it)."""
    rate = schedule(cfg, learning_rate, steps)
    decay = cfg.weight_decay or None  # None: Keras skips the decay step altogether, as before the option existed
    if cfg.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(rate, momentum=cfg.momentum, weight_decay=decay)
    else:
        optimizer = keras.optimizers.Adam(rate, weight_decay=decay)
    if decay:
        optimizer.exclude_from_weight_decay(var_names=list(NO_DECAY))
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


def datasets(
    params: Params, cfg: TrainConfig, data: Path, train_per_class: int | None = None
) -> tuple[tf.data.Dataset, tf.data.Dataset, np.ndarray]:
    """The training and validation pipelines; ``train_per_class``: train on that many images per class at most."""
    index = pd.read_csv(data / "index.csv")
    if train_per_class is not None:
        index = train_subset(index, train_per_class, params.seed)
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


def train_subset(index: pd.DataFrame, per_class: int, seed: int) -> pd.DataFrame:
    """``index`` with at most ``per_class`` training images of each class; the validation rows all kept.

    Originals come before augmented copies, each in a seeded order: the subset holds as many distinct faces as the
    class has (a minority class's copies are variations of a few originals), and every call with the same seed
    picks the same images, so the trials of a search are compared on the same data.
    """
    train = index[index["split"] == "train"].sample(frac=1.0, random_state=seed)
    kept = train.sort_values("augmented", kind="stable").groupby("label", sort=False).head(per_class)
    return pd.concat([index[index["split"] != "train"], kept.sort_index()])


def build_training_state(model: keras.Model) -> None:
    """Create a compiled model's optimizer slots, loss trackers and metric variables now, eagerly, as Keras does
    itself before fit only for a model made under an explicit distribution strategy. Under the default strategy it
    creates them while tracing the training step, and TensorFlow then traces the whole step a second time
    (InceptionResNetV2: about 25 s more per fit on 2 CPU cores). One all-zero image goes through the model in
    inference mode, so no weight, statistic or random draw of the training changes. The guarding test is
    tests/training/test_runtime.py::test_fit_creates_no_variable_inside_a_traced_function.
    """
    x = keras.ops.zeros((1, *model.inputs[0].shape[1:]), dtype=model.inputs[0].dtype)
    y_pred = model(x, training=False)
    y = keras.tree.map_structure(keras.ops.zeros_like, y_pred)
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.compute_loss(x=x, y=y, y_pred=y_pred, training=False)
    model.compute_metrics(x, y, y_pred, sample_weight=None)
    model.reset_metrics()


def phase_runner(model: keras.Model) -> keras.Model:
    """A new Model over ``model``'s layers (so the same weights) to fit one phase with.

    BackupAndRestore records the epoch it restored on the Model it fits, and Keras then prefers that epoch to the
    ``initial_epoch`` of every later ``fit`` of the same Model: a run resumed in phase 1 would start phase 2 back at
    phase 1's epoch. A fresh Model per phase carries no such record.
    """
    # the same graph, not the model nested as a layer: its weight files then load into ``model`` as they are
    return keras.Model(model.input, model.output, name=model.name)


def optimizer_data(train: tf.data.Dataset, cfg: TrainConfig, seed: int) -> tf.data.Dataset:
    """The batches the optimizer steps on: ``train`` mirrored and moved (``cfg.random_flip``, ``cfg.random_shift``),
    then blended (``cfg.mixup``), with draws from ``seed`` that change every epoch; ``train`` itself when all are off.
    What the train stage and a tuning trial both fit on."""
    moved = tfdata.jitter(train, cfg.random_flip, cfg.random_shift, seed)
    return tfdata.mixup(moved, cfg.mixup, seed)


def fit(
    model: keras.Model,
    cfg: TrainConfig,
    train: tf.data.Dataset,
    val: tf.data.Dataset,
    state: Path,
    live_dir: Path,
    seed: int = 0,
) -> list[dict]:
    """Run the phases not yet finished; return the history (one dict per epoch) over all phases. The optimizer steps
    on ``optimizer_data(train, cfg, seed)``; the BatchNormalization statistics are recomputed on ``train`` as it is,
    the images that inference sees."""
    history = callbacks.load_history(state)
    offset = 0
    for phase in phases(cfg):
        done = state / f"{phase.name}.done.weights.h5"
        set_trainable(model, phase.unfreeze)
        compile_model(model, cfg, phase.learning_rate)
        if done.exists():
            without_optimizer(model).load_weights(done)
        else:
            runner = phase_runner(model)
            compile_model(runner, cfg, phase.learning_rate, phase.epochs * steps_per_epoch(train))
            build_training_state(runner)
            runner.fit(
                optimizer_data(train, cfg, seed),
                validation_data=val,
                initial_epoch=offset,
                epochs=offset + phase.epochs,
                shuffle=False,  # fit's own shuffling is for arrays; the dataset shuffles itself (tfdata.labelled)
                verbose=2,
                callbacks=callbacks.for_phase(runner, cfg, state, phase.name, live_dir, history, train),
            )
            with atomic.target(done) as tmp:
                # the network only: the next phase compiles a fresh optimizer, so the slots would be a third of
                # the file, written and read for nothing
                without_optimizer(model).save_weights(tmp)
        offset += phase.epochs
    return history


def without_optimizer(model: keras.Model) -> keras.Model:
    """The trained network as a model that was never compiled: the same layers and weights, saved without the
    optimizer's state (Adam's two slots per weight make the file three times larger, which every load then reads).
    Keras 3's .keras format has no include_optimizer option; inference loads with compile=False anyway."""
    return keras.Model(model.input, model.output, name=model.name)
