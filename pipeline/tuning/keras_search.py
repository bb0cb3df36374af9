"""Keras Tuner search (hyperband, random, bayesian), alone or distributed as one chief and any number of workers.

Distribution is Keras Tuner's own: with KERASTUNER_ORACLE_IP/_PORT and KERASTUNER_TUNER_ID set, the process whose
id contains "chief" serves the oracle over gRPC and runs no trial; every other process is a worker that asks the
chief for trials and reports their scores. Workers write into the same project folder as the chief (a shared file
system between machines): each trial folder gets a `run.json` saying which worker ran it and for how long.

The oracle's state is saved after every trial, so a rerun of an interrupted search reloads it, reruns the trial that
was cut short and goes on; raising max_trials extends a finished search.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from concurrent import futures
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
CHIEF_POLL_S = 0.5
IDLE_WAIT_S = 2.0


def role() -> str:
    """'single', 'chief' or 'worker', from Keras Tuner's environment variables."""
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return "single"
    for var in ("KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID"):
        if var not in os.environ:
            raise RuntimeError(f"KERASTUNER_ORACLE_IP is set but {var} is not: distributed tuning needs all three")
    return "chief" if "chief" in os.environ["KERASTUNER_TUNER_ID"] else "worker"


class _Budgeted:
    """What our oracles add to Keras Tuner's: a time cap, and the hand-set configuration as the first trial.

    The first trial trains train.<model> as params.yaml sets it (the space's defaults): the search then starts from
    the known configuration and reports nothing worse by its own measure. All three algorithms draw their random
    configurations through ``_random_values``.
    """

    deadline: float | None = None  # time.monotonic() after which no trial is launched; running ones finish

    def populate_space(self, trial_id):
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return {"status": "STOPPED"}
        return super().populate_space(trial_id)

    def _random_values(self):
        if not self.start_order:
            return {hp.name: hp.default for hp in self.hyperparameters.space}
        return super()._random_values()


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

    def __init__(self, oracle, dims, objective: Objective, epochs: int, directory: Path, project: str):
        self.dims = dims
        self.objective_fn = objective
        self.epochs = epochs
        saved = (directory / project / "oracle.json").exists()
        super().__init__(oracle, hypermodel=None, directory=str(directory), project_name=project)
        if saved and not Path(self._get_tuner_fname()).exists() and role() != "worker":
            # Keras Tuner reloads the oracle only beside this tuner id's own file: a search begun alone and
            # resumed as a chief (or the reverse) would otherwise start over and overwrite the trials done
            self.oracle.reload()
        if role() == "worker":
            self.oracle.create_trial = _patient(self.oracle.create_trial)

    def run_trial(self, trial, *args, **kwargs):
        values = trial.hyperparameters.values
        epochs = int(values.get("tuner/epochs", self.epochs))
        started = time.monotonic()
        try:
            score = self.objective_fn(space.from_values(self.dims, values), epochs)
        except Exception:
            traceback.print_exc()  # Keras Tuner keeps the trace only in the trial's record
            raise
        run = {"tuner_id": self.tuner_id, "epochs": epochs, "seconds": round(time.monotonic() - started, 1)}
        atomic.write_json(Path(self.get_trial_dir(trial.trial_id)) / RUN_FILE, run)
        return {OBJECTIVE: score}

    def search(self, *args, **kwargs):
        if role() != "chief":
            return super().search(*args, **kwargs)
        self.save()
        if not _finished(self.oracle):
            serve(self.oracle)

    def records(self) -> list[Record]:
        return [_record(t, Path(self.project_dir), self.dims) for t in self.oracle.trials.values()]


def _patient(create_trial):
    """A worker told IDLE (Hyperband waiting for a round to finish elsewhere) asks again at once, in a loop of gRPC
    calls; pausing between them leaves the chief's single server thread to the others."""

    def ask(tuner_id):
        trial = create_trial(tuner_id)
        if trial.status == "IDLE":
            time.sleep(IDLE_WAIT_S)
        return trial

    return ask


def _finished(oracle: kt.Oracle) -> bool:
    """A chief rerun over a search that already reached max_trials must not wait for workers that never come."""
    return bool(oracle.max_trials) and len(oracle.trials) >= oracle.max_trials and not oracle._retry_queue


def serve(oracle: kt.Oracle) -> None:
    """Serve ``oracle`` to the workers until each has been told to stop and no trial is running.

    Keras Tuner's own loop (oracle_chief.start_server) polls every 20 s once the first worker is done and never
    stops the server; this one answers within a second and shuts down cleanly.
    """
    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute import oracle_chief

    address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = oracle_chief.OracleServicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    if not server.add_insecure_port(address):
        raise RuntimeError(f"the chief cannot listen on {address}")
    server.start()
    print(f"tune chief: serving the search on {address}", flush=True)
    try:
        while not (servicer.stop_triggered and oracle_chief.exit_chief(oracle)):
            time.sleep(CHIEF_POLL_S)
    finally:
        server.stop(grace=2)


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
        tuner_id=run.get("tuner_id"),
    )


def search(
    tune: TuneConfig,
    dims: list[space.Dimension],
    baseline: dict,
    objective: Objective,
    directory: Path,
    project: str,
    seed: int,
) -> list[Record] | None:
    """Run (or, as a worker, help run) the search; the trials' records, or None on a worker."""
    oracle = make_oracle(tune, dims, baseline, seed)
    if tune.time_cap_s is not None:
        oracle.deadline = time.monotonic() + tune.time_cap_s
    tuner = Tuner(oracle, dims, objective, tune.epochs_per_trial, directory, project)
    tuner.search()
    if role() == "worker":
        return None
    return sorted(tuner.records(), key=lambda r: int(r.trial_id))
