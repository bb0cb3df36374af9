"""Evolutionary search: a DEAP genetic algorithm over the unit-cube encoding of the shared search space.

An individual is one gene in [0, 1] per dimension (space.decode maps it onto the ranges and choices). Each generation
selects parents by tournament, blends pairs, mutates with Gaussian noise (clipped to the cube) and keeps the best
individual so far (elitism). A trial trains one configuration never seen before; a configuration met again, which
the choices make common, costs nothing.

Resuming needs no saved population: the algorithm is replayed from its seed, and every configuration already
scored is read back from `evaluations.json` (written atomically after each trial) instead of being trained again, so
the replay retraces the earlier run exactly and continues where it stopped.
"""

from __future__ import annotations

import contextlib
import copy
import json
import random
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from deap import base, tools

from pipeline import atomic
from pipeline.config import TuneConfig
from pipeline.tuning import space
from pipeline.tuning.records import COMPLETED, Record
from pipeline.tuning.trial import Objective

EVALUATIONS = "evaluations.json"
FAILED_FITNESS = -1.0  # below any macro F1
MAX_CONSECUTIVE_FAILURES = 3  # as Keras Tuner: a configuration that keeps failing is a bug, not bad luck


class Fitness(base.Fitness):
    weights = (1.0,)  # maximise validation macro F1


class Individual(list):
    def __init__(self, genes=()):
        super().__init__(genes)
        self.fitness = Fitness()


@contextlib.contextmanager
def _stream(rng: random.Random) -> Iterator[None]:
    """Run DEAP's operators, which draw from the global `random`, on the search's own stream.

    Training reseeds the global generator (keras.utils.set_random_seed), and a replayed trial does not train at all:
    keeping the two apart is what makes a resumed search retrace the interrupted one.
    """
    outer = random.getstate()
    random.setstate(rng.getstate())
    try:
        yield
    finally:
        rng.setstate(random.getstate())
        random.setstate(outer)


class _Evaluations:
    """The scored configurations, in the order they were first trained, saved after each."""

    def __init__(self, path: Path):
        self.path = path
        self.records = [Record(**r) for r in json.loads(path.read_text())] if path.exists() else []
        self.by_key = {_key(r.hparams): r for r in self.records}

    def add(self, record: Record) -> None:
        self.records.append(record)
        self.by_key[_key(record.hparams)] = record
        atomic.write_json(self.path, [r.to_dict() for r in self.records])


def _key(hparams: dict[str, Any]) -> str:
    return json.dumps(hparams, sort_keys=True)


class _Budget(Exception):
    """No more trials may be launched (max_trials reached, or past the time cap)."""


def search(
    tune: TuneConfig, dims: list[space.Dimension], baseline: dict, objective: Objective, folder: Path, seed: int
) -> list[Record]:
    ga = tune.evolutionary
    folder.mkdir(parents=True, exist_ok=True)
    store = _Evaluations(folder / EVALUATIONS)
    deadline = None if tune.time_cap_s is None else time.monotonic() + tune.time_cap_s
    failures = 0

    def evaluate(individuals: list[Individual], generation: int) -> None:
        nonlocal failures
        for ind in individuals:
            if ind.fitness.valid:
                continue
            hparams = space.decode(dims, ind)
            known = store.by_key.get(_key(hparams))
            if known is None:
                if len(store.records) >= tune.max_trials or deadline is not None and time.monotonic() >= deadline:
                    raise _Budget
                known = _train(objective, hparams, tune.epochs_per_trial, f"{len(store.records):04d}", generation)
                store.add(known)
                failures = failures + 1 if known.status != COMPLETED else 0
                if failures >= MAX_CONSECUTIVE_FAILURES:
                    raise RuntimeError(f"{failures} trials in a row failed; see the tracebacks above")
            ind.fitness.values = (known.objective if known.status == COMPLETED else FAILED_FITNESS,)

    rng = random.Random(seed)
    with _stream(rng):
        # the hand-set configuration is the first individual, as it is the first trial of the Keras Tuner searches
        population = [Individual(space.encode(dims, baseline))]
        population += [Individual(random.random() for _ in dims) for _ in range(ga.population - 1)]
    try:
        evaluate(population, 0)
        # every generation normally brings a new configuration; the bound ends a search that has converged
        for generation in range(1, tune.max_trials + 1):
            with _stream(rng):
                offspring = _vary(population, ga)
            evaluate(offspring, generation)
            elite = max(population, key=lambda i: i.fitness.values[0])
            worst = min(range(len(offspring)), key=lambda k: offspring[k].fitness.values[0])
            if elite.fitness.values[0] > offspring[worst].fitness.values[0]:
                offspring[worst] = copy.deepcopy(elite)
            population = offspring
    except _Budget:
        pass
    return store.records


def _vary(population: list[Individual], ga) -> list[Individual]:
    offspring = [copy.deepcopy(i) for i in tools.selTournament(population, len(population), ga.tournament)]
    for a, b in zip(offspring[::2], offspring[1::2], strict=False):
        if random.random() < ga.crossover:
            tools.cxBlend(a, b, alpha=0.5)
            del a.fitness.values, b.fitness.values
    for ind in offspring:
        if random.random() < ga.mutation:
            tools.mutGaussian(ind, mu=0.0, sigma=ga.mutation_sigma, indpb=1.0)
            del ind.fitness.values
        ind[:] = [min(max(g, 0.0), 1.0) for g in ind]
    return offspring


def _train(objective: Objective, hparams: dict[str, Any], epochs: int, trial_id: str, generation: int) -> Record:
    started = time.monotonic()
    try:
        outcome = objective(hparams, epochs)
        score, status, cut_short = float(outcome.score), COMPLETED, outcome.cut_short
    except Exception:
        traceback.print_exc()
        score, status, cut_short = None, "FAILED", False
    seconds = round(time.monotonic() - started, 1)
    return Record(trial_id, status, score, hparams, epochs, seconds, generation, cut_short)
