"""Keras Tuner search (hyperband, random, bayesian) in one process, through Keras Tuner's public API only.

Each trial folder gets a `run.json` saying how many epochs it trained and for how long. The oracle's state is saved
after every trial, so a rerun of an interrupted search reloads it, reruns the trial that was cut short and goes on;
raising max_trials extends a finished search.
"""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path

import keras_tuner as kt
from keras_tuner.engine.base_tuner import BaseTuner

from pipeline import atomic
from pipeline.config import TuneConfig
from pipeline.tuning import space
from pipeline.tuning.records import Record
from pipeline.tuning.trial import Objective

OBJECTIVE = "val_macro_f1"
RUN_FILE = "run.json"


class _Budgeted:
    """What our oracles add to Keras Tuner's: a time cap, and the hand-set configuration as the first trial.

    The first trial trains train.<model> as params.yaml sets it (the space's defaults): the search then starts from
    the known configuration and reports nothing worse by its own measure. ``populate_space`` is the hook Keras Tuner
    documents for custom oracles; the first trial keeps what the algorithm set besides the space (Hyperband's
    "tuner/*" budget and bracket values) and takes the defaults for the space itself.
    """

    deadline: float | None = None  # time.monotonic() after which no trial is launched; running ones finish

    def populate_space(self, trial_id):
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return {"status": "STOPPED"}
        proposal = super().populate_space(trial_id)
        if not self.trials and proposal.get("values") is not None:
            defaults = {hp.name: hp.default for hp in self.hyperparameters.space}
            proposal = {**proposal, "values": {**proposal["values"], **defaults}}
        return proposal


class RandomOracle(_Budgeted, kt.oracles.RandomSearchOracle):
    pass


class BayesianOracle(_Budgeted, kt.oracles.BayesianOptimizationOracle):
    pass


class HyperbandOracle(_Budgeted, kt.oracles.HyperbandOracle):
    pass


def make_oracle(tune: TuneConfig, dims: list[space.Dimension], baseline: dict, seed: int) -> kt.Oracle:
    common = {
        "objective": kt.Objective(OBJECTIVE, "max"),
        "hyperparameters": space.hyperparameters(dims, baseline),
        "allow_new_entries": False,
        "seed": seed,
    }
    if tune.algorithm == "random":
        return RandomOracle(max_trials=tune.max_trials, **common)
    if tune.algorithm == "bayesian":
        return BayesianOracle(max_trials=tune.max_trials, num_initial_points=tune.bayesian.initial_points, **common)
    if tune.algorithm == "hyperband":
        hb = tune.hyperband
        oracle = HyperbandOracle(
            max_epochs=hb.max_epochs, factor=hb.factor, hyperband_iterations=hb.iterations, **common
        )
        oracle.max_trials = tune.max_trials  # the base Oracle stops at max_trials; Hyperband's constructor omits it
        return oracle
    raise ValueError(f"not a Keras Tuner algorithm: {tune.algorithm}")


class Tuner(BaseTuner):
    """Runs each trial through ``objective``; Hyperband's budget comes in the trial's "tuner/epochs" value.

    A trial promoted by Hyperband to a larger budget is trained again from scratch rather than from the earlier
    trial's weights: trials then need no checkpoints (an IRv2 weighs ~200 MB), and the two training phases of
    the train stage stay intact.
    """

    def __init__(self, oracle, dims, objective: Objective, epochs: int, folder: Path):
        self.dims = dims
        self.objective_fn = objective
        self.epochs = epochs
        # overwrite=False (the default): a search folder left by an interrupted run is reloaded and carried on
        super().__init__(oracle, hypermodel=None, directory=str(folder.parent), project_name=folder.name)

    def run_trial(self, trial, *args, **kwargs):
        values = trial.hyperparameters.values
        epochs = int(values.get("tuner/epochs", self.epochs))
        started = time.monotonic()
        try:
            outcome = self.objective_fn(space.from_values(self.dims, values), epochs)
        except Exception:
            traceback.print_exc()  # Keras Tuner keeps the trace only in the trial's record
            raise
        run = {"epochs": epochs, "seconds": round(time.monotonic() - started, 1), "cut_short": outcome.cut_short}
        atomic.write_json(Path(self.get_trial_dir(trial.trial_id)) / RUN_FILE, run)
        return {OBJECTIVE: outcome.score}

    def records(self) -> list[Record]:
        return [_record(t, Path(self.project_dir), self.dims) for t in self.oracle.trials.values()]


def _record(trial, project_dir: Path, dims) -> Record:
    run_file = project_dir / f"trial_{trial.trial_id}" / RUN_FILE
    run = json.loads(run_file.read_text()) if run_file.exists() else {}
    values = trial.hyperparameters.values
    return Record(
        trial_id=trial.trial_id,
        status=trial.status,
        objective=float(trial.score) if trial.score is not None else None,
        hparams=space.from_values(dims, values) if all(d.name in values for d in dims) else {},
        epochs=run.get("epochs"),
        seconds=run.get("seconds"),
        cut_short=run.get("cut_short", False),
    )


def search(
    tune: TuneConfig,
    dims: list[space.Dimension],
    baseline: dict,
    objective: Objective,
    folder: Path,
    seed: int,
) -> list[Record]:
    """Run the search in ``folder`` (resuming what it holds); the trials' records, in trial order."""
    oracle = make_oracle(tune, dims, baseline, seed)
    if tune.time_cap_s is not None:
        oracle.deadline = time.monotonic() + tune.time_cap_s
    tuner = Tuner(oracle, dims, objective, tune.epochs_per_trial, folder)
    tuner.search()
    return sorted(tuner.records(), key=lambda r: int(r.trial_id))
