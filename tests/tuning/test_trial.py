"""A trial's budget and inputs: the per-batch time budget, the fine-tuning phase, the low-fidelity training subset,
and the train.<model> keys a search reads (the code's list, the search key, and dvc.yaml's params agree)."""

from __future__ import annotations

import copy
import itertools

import keras
import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline import config
from pipeline.config import TrainConfig
from pipeline.data import duplicates
from pipeline.data import manifest as manifest_lib
from pipeline.stages import augment, tune
from pipeline.training import loop
from pipeline.tuning import trial
from tests import workspace


class Batches(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen = 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1


def test_the_time_budget_stops_a_fit_mid_epoch():
    ticks = itertools.count()  # a clock that advances one second per reading: one reading per batch
    budget = trial.TimeBudget(deadline=3, clock=lambda: next(ticks))
    counted = Batches()
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.zeros((20, 2)), np.zeros((20, 1))
    model.fit(x, y, batch_size=2, epochs=3, verbose=0, callbacks=[counted, budget])  # 10 batches per epoch
    assert budget.cut_short and counted.seen == 4  # clock readings 0, 1, 2 pass; the fourth (3) stops the fit


def test_no_budget_never_stops_a_fit():
    budget = trial.TimeBudget(deadline=None)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(np.zeros((8, 2)), np.zeros((8, 1)), batch_size=2, epochs=2, verbose=0, callbacks=[budget])
    assert not budget.cut_short and len(history.history["loss"]) == 2


def test_a_pretrained_trial_fine_tunes_whatever_finetune_epochs_says(params):
    scratch = trial.trial_config(params.train["irv2"], {}, 2, "t")
    assert (scratch.epochs, scratch.finetune_epochs) == (2, 0)
    pretrained = config.replace(params.train["irv2"], {"weights": "imagenet", "finetune_epochs": 0}, "t")
    cfg = trial.trial_config(pretrained, {"learning_rate": 0.01}, 3, "t")
    assert (cfg.epochs, cfg.finetune_epochs, cfg.learning_rate) == (3, 3, 0.01)


def balanced_index() -> pd.DataFrame:
    rows = [
        {"path": f"train/{label}/{label}{i}.png", "split": "train", "label": label, "augmented": i >= originals}
        for label, originals in (("joy", 6), ("fear", 2))
        for i in range(6)
    ]
    rows += [
        {"path": f"val/{label}/v.png", "split": "val", "label": label, "augmented": False} for label in ("joy", "fear")
    ]
    return pd.DataFrame(rows)


def test_the_training_subset_is_stratified_seeded_and_prefers_originals():
    index = balanced_index()
    kept = loop.train_subset(index, 3, seed=1)
    train = kept[kept["split"] == "train"]
    assert train["label"].value_counts().to_dict() == {"joy": 3, "fear": 3}
    assert train[train["label"] == "fear"]["augmented"].sum() == 1  # both originals, then one copy
    assert kept[kept["split"] == "val"].equals(index[index["split"] == "val"])  # validation untouched
    assert kept.equals(loop.train_subset(index, 3, seed=1))  # every trial gets the same images
    assert set(loop.train_subset(index, 3, seed=2)["path"]) != set(kept["path"])
    assert len(loop.train_subset(index, 100, seed=1)) == len(index)  # a class smaller than N is kept whole


def test_reads_and_ignores_cover_the_train_section_once():
    assert set(trial.READS).isdisjoint(trial.IGNORES)
    assert set(trial.READS) | set(trial.IGNORES) == set(TrainConfig.model_fields)  # a new knob needs a decision


def test_dvc_yaml_tracks_exactly_the_keys_a_trial_reads():
    stage = yaml.safe_load((workspace.REPO / "dvc.yaml").read_text())["stages"]["tune"]
    prefix = "train.${item.model}."
    tracked = [p for p in stage["params"] if isinstance(p, str) and p.startswith("train.")]
    assert all(p.startswith(prefix) for p in tracked)  # no whole train.<model> section
    assert [p.removeprefix(prefix) for p in tracked] == list(trial.READS)


def with_train(raw_params: dict, **values) -> config.Params:
    raw = copy.deepcopy(raw_params)
    raw["train"]["irv2"].update(values)
    return config.from_dict(raw)


def test_the_search_key_holds_the_keys_a_trial_reads_only(raw_params, tmp_path):
    index = tmp_path / "index.csv"
    index.write_text("path,split,label\n")
    key = tune.search_key(config.from_dict(raw_params), "irv2", index)
    ignored = {"epochs": 99, "finetune_epochs": 5, "early_stopping_patience": 9, "reduce_lr_patience": 9}
    assert tune.search_key(with_train(raw_params, **ignored), "irv2", index) == key
    assert tune.search_key(with_train(raw_params, head_units=64), "irv2", index) != key
    assert tune.search_key(with_train(raw_params, batch_size=8), "irv2", index) != key


@pytest.mark.integration
def test_dvc_reruns_the_search_for_a_key_it_reads_only(tmp_path):
    """DVC itself on the tune stage's params as dvc.yaml lists them (the command replaced by a no-op)."""
    stage = yaml.safe_load((workspace.REPO / "dvc.yaml").read_text())["stages"]["tune"]
    noop = {"matrix": stage["matrix"], "cmd": "echo ${item.model}", "params": stage["params"]}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"tune": noop}}))
    raw = yaml.safe_load((workspace.REPO / "params.yaml").read_text())
    workspace.write_params(tmp_path, raw)
    workspace.dvc(tmp_path, "init", "--no-scm", "-q")
    workspace.dvc(tmp_path, "repro", "-q")
    for key, value in (("epochs", 99), ("finetune_epochs", 3), ("early_stopping_patience", 1)):
        raw["train"]["irv2"][key] = value
    workspace.write_params(tmp_path, raw)
    assert "up to date" in workspace.dvc(tmp_path, "status").stdout
    raw["train"]["irv2"]["head_units"] = 64
    workspace.write_params(tmp_path, raw)
    status = workspace.dvc(tmp_path, "status").stdout
    assert "tune@irv2:" in status and "train.irv2.head_units" in status and "tune@irv2_unet" not in status


@pytest.mark.slow
@pytest.mark.integration
def test_a_real_trial_on_a_subset_is_cut_short_by_its_budget_and_scored(tiny_raw_master, tmp_path):
    """IRv2 on the tiny data: a budget spent by the first batch stops the fit there, and the trial is still scored.
    (On 2 shared CPU cores this trial took 17 s, a whole one-epoch trial on all the tiny data 49 s.)"""
    params = config.from_dict(workspace.profile_params({"tune": {"trial_time_s": 0.001, "subset_per_class": 2}}))
    frame = manifest_lib.build(
        tiny_raw_master, params.classes, params.class_aliases, params.split_folders, duplicates.rule(params.validate)
    )
    frame.to_csv(tmp_path / "manifest.csv", index=False)
    balanced = tmp_path / "balanced"
    augment.run(params, tmp_path / "manifest.csv", tiny_raw_master, balanced, tmp_path / "a.json", tmp_path / "b.csv")
    outcome = trial.objective(params, "irv2", balanced)({"head_units": 8}, 2)
    assert outcome.cut_short and 0 <= outcome.score <= 1
