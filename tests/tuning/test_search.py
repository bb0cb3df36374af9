"""The searches (Keras Tuner's three and the DEAP genetic algorithm) with a cheap stand-in for training.

What is under test is the search machinery: outputs, resuming, the key that starts a fresh search, the budget.
A real trial (IRv2 on tiny data) runs in tests/integration/test_tune.py.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import re
import statistics
import time

import pytest

from pipeline import config
from pipeline.stages import train, tune
from pipeline.tuning import evolution, records, space, trial

ALGORITHMS = ["random", "bayesian", "hyperband", "evolutionary"]


class FakeObjective:
    """A smooth score of the hyperparameters, a log of the calls, and optionally a kill at call ``interrupt_at``.

    ``epochs_in_budget``: the epochs that fit a trial's time budget; a trial asking for more is cut short there and
    scored on what it reached, as the real objective's TimeBudget does.
    """

    def __init__(self, interrupt_at: int | None = None, seconds: float = 0.0, epochs_in_budget: int | None = None):
        self.calls: list[tuple[dict, int]] = []
        self.interrupt_at = interrupt_at
        self.seconds = seconds
        self.epochs_in_budget = epochs_in_budget

    def __call__(self, hparams: dict, epochs: int) -> trial.Outcome:
        self.calls.append((hparams, epochs))
        if len(self.calls) == self.interrupt_at:
            raise KeyboardInterrupt  # what a kill looks like from inside: not an Exception, so not a failed trial
        time.sleep(self.seconds)
        cut_short = self.epochs_in_budget is not None and epochs > self.epochs_in_budget
        reached = self.epochs_in_budget if cut_short else epochs
        score = 0.6 - 0.1 * abs(math.log10(hparams["learning_rate"]) + 2.5) - abs(hparams["dropout"] - 0.2)
        return trial.Outcome(score + (0.05 if hparams["optimizer"] == "adam" else 0.0) + 0.01 * reached, cut_short)


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "balanced"
    folder.mkdir()
    (folder / "index.csv").write_text("path,split,label\ntrain/joy/a.png,train,joy\n")
    return folder


def with_tune(raw_params: dict, **tune_values) -> config.Params:
    raw = copy.deepcopy(raw_params)
    raw["tune"] = config.merge(raw["tune"], tune_values)
    return config.from_dict(raw)


def search(params, data, root, objective):
    return tune.run(params, "irv2", data, root, objective)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # the Gaussian process on 3 points
def test_each_algorithm_writes_valid_hparams(raw_params, data, tmp_path, algorithm):
    # bayesian: one proposal from the Gaussian process (each costs seconds of scipy restarts) after three random
    params = with_tune(raw_params, algorithm=algorithm, max_trials=4, time_cap_s=None, bayesian={"initial_points": 3})
    objective = FakeObjective()
    found = search(params, data, tmp_path / "tuner", objective)
    out = {k: tmp_path / k for k in ("hparams.json", "metrics.json", "plot.csv")}
    best = tune.write_outputs(params, "irv2", found, out["hparams.json"], out["metrics.json"], out["plot.csv"], 1.0)

    assert len(objective.calls) == len(found) == 4
    # the first trial is the hand-set configuration, whichever the algorithm
    dims = space.dimensions(params.tune.space)
    assert objective.calls[0][0] == pytest.approx(space.baseline(dims, params.train["irv2"]))
    hparams = json.loads(out["hparams.json"].read_text())
    assert hparams == best.hparams and set(hparams) == set(params.tune.space)
    cfg = train.tuned(params.train["irv2"], out["hparams.json"])
    assert (cfg.learning_rate, cfg.optimizer, cfg.head_units) == (
        hparams["learning_rate"],
        hparams["optimizer"],
        hparams["head_units"],
    )
    metrics = json.loads(out["metrics.json"].read_text())
    assert metrics["trials"] == 4 and metrics["best_hparams"] == hparams
    assert (metrics["failed_trials"], metrics["trials_cut_short"], metrics["search_seconds"]) == (0, 0, 1.0)
    assert metrics["seconds_per_trial"] == statistics.median(r.seconds for r in found)
    assert metrics["best_objective"] == round(max(r.objective for r in found), 4)
    rows = list(csv.DictReader(out["plot.csv"].open()))
    assert [int(r["trial"]) for r in rows] == [1, 2, 3, 4]
    assert float(rows[-1]["best_so_far"]) == metrics["best_objective"]
    if algorithm == "hyperband":  # max_epochs 3, factor 3: three one-epoch trials, the best retrained for three
        assert [r.epochs for r in found] == [1, 1, 1, 3]
        assert found[3].hparams == max(found[:3], key=lambda r: r.objective).hparams
    else:
        assert {r.epochs for r in found} == {params.tune.epochs_per_trial}


@pytest.mark.parametrize("algorithm", ["random", "hyperband", "evolutionary"])
def test_a_larger_budget_extends_the_search(raw_params, data, tmp_path, algorithm):
    root = tmp_path / "tuner"
    first = search(with_tune(raw_params, algorithm=algorithm, max_trials=2), data, root, FakeObjective())
    more = FakeObjective()
    second = search(with_tune(raw_params, algorithm=algorithm, max_trials=3), data, root, more)
    assert len(more.calls) == 1  # only the new trial ran
    assert second[:2] == first and len(second) == 3


@pytest.mark.parametrize("algorithm", ["random", "evolutionary"])
def test_a_killed_search_resumes_at_the_trial_cut_short(raw_params, data, tmp_path, algorithm):
    params = with_tune(raw_params, algorithm=algorithm, max_trials=3)
    root = tmp_path / "tuner"
    killed = FakeObjective(interrupt_at=2)
    with pytest.raises(KeyboardInterrupt):
        search(params, data, root, killed)
    resumed = FakeObjective()
    found = search(params, data, root, resumed)
    assert resumed.calls[0] == killed.calls[1]  # the same configuration, run again
    assert len(resumed.calls) == 2 and len(found) == 3
    assert all(r.status == "COMPLETED" for r in found)
    assert found[0].hparams == killed.calls[0][0]


@pytest.mark.parametrize("algorithm", ["random", "evolutionary"])
def test_a_changed_space_starts_a_fresh_search(raw_params, data, tmp_path, algorithm):
    root = tmp_path / "tuner"
    search(with_tune(raw_params, algorithm=algorithm, max_trials=2), data, root, FakeObjective())
    changed = with_tune(raw_params, algorithm=algorithm, max_trials=2, space={"dropout": {"high": 0.6}})
    fresh = FakeObjective()
    found = search(changed, data, root, fresh)
    assert len(fresh.calls) == 2 and len(found) == 2
    assert [p.name for p in root.iterdir()] == [tune.search_key(changed, "irv2", data / "index.csv")]


def test_the_key_holds_the_definition_not_the_budget(raw_params, data):
    index = data / "index.csv"
    key = tune.search_key(with_tune(raw_params), "irv2", index)
    assert tune.search_key(with_tune(raw_params, max_trials=99, time_cap_s=5), "irv2", index) == key
    assert tune.search_key(with_tune(raw_params, epochs_per_trial=7), "irv2", index) != key
    assert tune.search_key(with_tune(raw_params, space={"dropout": {"low": 0.2}}), "irv2", index) != key
    assert tune.search_key(with_tune(raw_params), "irv2_unet", index) != key
    index.write_text(index.read_text() + "train/joy/b.png,train,joy\n")
    assert tune.search_key(with_tune(raw_params), "irv2", index) != key


@pytest.mark.parametrize("algorithm", ["random", "evolutionary"])
def test_no_trial_is_launched_after_the_time_cap(raw_params, data, tmp_path, algorithm):
    params = with_tune(raw_params, algorithm=algorithm, max_trials=50, time_cap_s=1)
    slow = FakeObjective(seconds=0.4)
    found = search(params, data, tmp_path / "tuner", slow)
    assert 1 <= len(found) <= 4  # launched at about 0, 0.4, 0.8 s; none after 1 s
    assert len(slow.calls) == len(found)


def test_evolution_stores_each_trial_with_its_generation(raw_params, data, tmp_path):
    params = with_tune(raw_params, algorithm="evolutionary", max_trials=9, evolutionary={"population": 3})
    found = search(params, data, tmp_path / "tuner", FakeObjective())
    (folder,) = (tmp_path / "tuner").iterdir()
    stored = json.loads((folder / evolution.EVALUATIONS).read_text())
    assert [r["trial_id"] for r in stored] == [r.trial_id for r in found]
    assert [r["generation"] for r in stored][:3] == [0, 0, 0] and stored[-1]["generation"] >= 1
    assert len({json.dumps(r["hparams"], sort_keys=True) for r in stored}) == len(stored)  # each trained once


def test_train_rejects_a_wrong_hparams_file(params, tmp_path):
    path = tmp_path / "hparams.json"
    path.write_text(json.dumps({"learning_rate": 0.01, "head_unit": 8}))
    with pytest.raises(config.ConfigError, match=re.escape(f"{path}.head_unit: unknown key")):
        train.tuned(params.train["irv2"], path)


def outputs(params, found, tmp_path, name="irv2"):
    out = {k: tmp_path / k for k in ("hparams.json", "metrics.json", "plot.csv")}
    best = tune.write_outputs(params, name, found, out["hparams.json"], out["metrics.json"], out["plot.csv"], 0.0)
    return best, {k: v.read_text() for k, v in out.items()}


@pytest.mark.parametrize("name", ["irv2", "irv2_unet"])
def test_algorithm_none_writes_the_baseline_without_a_trial(raw_params, data, tmp_path, name):
    raw = copy.deepcopy(raw_params)
    raw["train"][name]["dropout"] = 0.45
    raw["tune"]["algorithm"] = "none"
    params = config.from_dict(raw)
    objective = FakeObjective()
    found = tune.run(params, name, data, tmp_path / "tuner", objective)
    best, out = outputs(params, found, tmp_path, name)
    assert found == [] and objective.calls == [] and best is None
    assert not (tmp_path / "tuner").exists()  # no search state either
    hparams = json.loads(out["hparams.json"])
    assert hparams == space.baseline(space.dimensions(params.tune.space), params.train[name])
    assert hparams["dropout"] == 0.45
    assert tune.moved_into_space(params, name) == []
    metrics = json.loads(out["metrics.json"])
    assert metrics["algorithm"] == "none" and metrics["best_hparams"] == hparams
    assert (metrics["trials"], metrics["trials_cut_short"], metrics["failed_trials"]) == (0, 0, 0)
    assert "best_objective" not in metrics and metrics["seconds_per_trial"] is None
    assert out["plot.csv"].splitlines() == [",".join(records.columns(list(params.tune.space)))]


@pytest.mark.parametrize("name", ["irv2", "irv2_unet"])
def test_algorithm_none_keeps_a_value_outside_the_space_as_set(raw_params, data, tmp_path, name):
    """train applies hparams.json over train.<model>: without a search nothing may be brought into the space (a
    learning rate of 1e-05 under a space from 1e-4 stays 1e-05), while a search's first trial must, and says so."""
    raw = copy.deepcopy(raw_params)
    raw["train"][name] |= {"learning_rate": 1e-05, "unfreeze_top_layers": 10000}
    raw["tune"]["algorithm"] = "none"
    params = config.from_dict(raw)
    assert params.tune.space["learning_rate"].low > 1e-05
    best, out = outputs(params, tune.run(params, name, data, tmp_path / "tuner", FakeObjective()), tmp_path, name)
    hparams = json.loads(out["hparams.json"])
    assert hparams["learning_rate"] == 1e-05 and hparams["unfreeze_top_layers"] == 10000
    assert space.baseline(space.dimensions(params.tune.space), params.train[name])["learning_rate"] > 1e-05
    notes = tune.moved_into_space(params, name)
    assert f"train.{name}.learning_rate: 1e-05 is outside tune.space.learning_rate" in notes[0]
    assert any(n.startswith(f"train.{name}.unfreeze_top_layers: 10000 is outside") for n in notes), notes
    assert best is None and json.loads(out["metrics.json"])["best_hparams"] == hparams


@pytest.mark.parametrize("algorithm", ["hyperband", "evolutionary"])
def test_a_trial_cut_short_by_its_time_budget_is_scored_and_counted(raw_params, data, tmp_path, algorithm):
    # hyperband (max_epochs 3, factor 3): three one-epoch trials then a three-epoch one, which the budget cuts;
    # evolutionary: every trial asks for epochs_per_trial 2 and gets 1
    params = with_tune(raw_params, algorithm=algorithm, max_trials=4, epochs_per_trial=2, time_cap_s=None)
    found = search(params, data, tmp_path / "tuner", FakeObjective(epochs_in_budget=1))
    _, out = outputs(params, found, tmp_path)
    cut = [r.cut_short for r in found]
    assert cut == ([False, False, False, True] if algorithm == "hyperband" else [True] * 4)
    assert all(r.status == "COMPLETED" and r.objective is not None for r in found)  # scored on what they reached
    metrics = json.loads(out["metrics.json"])
    assert (metrics["trials"], metrics["trials_cut_short"], metrics["failed_trials"]) == (4, sum(cut), 0)
    rows = list(csv.DictReader(io.StringIO(out["plot.csv"])))
    assert [r["cut_short"] for r in rows] == [str(c) for c in cut]
    # the flag survives a resume: the records are read back from the search's own state
    assert search(params, data, tmp_path / "tuner", FakeObjective()) == found


def test_the_trial_time_budget_and_subset_are_part_of_the_search_definition(raw_params, data):
    index = data / "index.csv"
    key = tune.search_key(with_tune(raw_params), "irv2", index)
    assert tune.search_key(with_tune(raw_params, trial_time_s=60), "irv2", index) != key  # scores would not compare
    assert tune.search_key(with_tune(raw_params, subset_per_class=8), "irv2", index) != key
