"""Stage `tune@<model>`: search train.<model>'s hyperparameters on the balanced data; the best go to hparams.json.

The search's working folder lives under `--dir` in a subfolder named by a key of everything the search depends on
(its definition in params, the train.<model> keys a trial reads, the data): a rerun with the same key resumes, a
changed key starts afresh and the stale folder is removed. The budget (tune.max_trials, tune.time_cap_s) is not in
the key, so raising it extends a search. With tune.algorithm none there is no search: hparams.json holds
train.<model>'s own values of the space.
"""

from __future__ import annotations

import argparse
import csv
import io
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import atomic
from pipeline.config import Params
from pipeline.training import model_stage, state
from pipeline.tuning import records, space
from pipeline.tuning.records import Record

if TYPE_CHECKING:  # the searches and the trial bring in Keras and TensorFlow: seconds that no search does without
    from pipeline.tuning import trial

# what is budget, not definition: changing it continues the same search
BUDGET_KEYS = ("max_trials", "time_cap_s")
NO_SEARCH = "none"


def search_key(params: Params, name: str, index_file: Path) -> str:
    from pipeline.tuning import trial

    tune = {k: v for k, v in params.tune.model_dump().items() if k not in BUDGET_KEYS}
    model = params.train[name].model_dump(include=set(trial.READS))  # the keys dvc.yaml tracks, no more
    settings = [tune, model, params.image_size, params.seed, params.classes]
    return state.inputs_key(settings, index_file)


def baseline(params: Params, name: str) -> dict[str, Any]:
    """train.<model>'s own values of the space, each brought into its dimension: the first trial of every search."""
    return space.baseline(space.dimensions(params.tune.space), params.train[name])


def as_set(params: Params, name: str) -> dict[str, Any]:
    """train.<model>'s own values of the space's keys exactly as set: the whole of no search (train applies
    hparams.json over train.<model>, so a value outside the space must not be brought into it there)."""
    cfg = params.train[name]
    return {d.name: getattr(cfg, d.name) for d in space.dimensions(params.tune.space)}


def moved_into_space(params: Params, name: str) -> list[str]:
    """What a search's first trial changes of train.<model> to bring it into tune.space: one line per key."""
    first, own = baseline(params, name), as_set(params, name)
    return [
        f"train.{name}.{key}: {own[key]!r} is outside tune.space.{key}, so the search's first trial uses {first[key]!r}"
        for key in own
        if first[key] != own[key]
    ]


def run(params: Params, name: str, data: Path, root: Path, objective: trial.Objective | None) -> list[Record]:
    """Search, resuming the search of the same key under ``root``; the trials' records (none without a search)."""
    tune = params.tune
    if tune.algorithm == NO_SEARCH:
        return []
    from pipeline.tuning import evolution, keras_search

    dims = space.dimensions(tune.space)
    folder = state.keyed_folder(root, search_key(params, name, data / "index.csv"))
    if tune.algorithm == "evolutionary":
        return evolution.search(tune, dims, baseline(params, name), objective, folder, params.seed)
    return keras_search.search(tune, dims, baseline(params, name), objective, folder, params.seed)


def write_outputs(
    params: Params,
    name: str,
    found: list[Record],
    hparams_path: Path,
    metrics_path: Path,
    plot_path: Path,
    seconds: float,
) -> Record | None:
    """Write the stage's outputs; the best trial (None without a search, whose hparams are train.<model> as set)."""
    searched = params.tune.algorithm != NO_SEARCH
    best = records.best(found) if searched else None
    hparams = best.hparams if best else as_set(params, name)
    atomic.write_json(hparams_path, hparams)
    metrics: dict[str, Any] = {"algorithm": params.tune.algorithm, "objective": "val_macro_f1"}
    if best:
        metrics |= {"best_objective": round(best.objective, 4), "best_trial": best.trial_id}
    metrics |= {"best_hparams": hparams, **records.summary(found), "search_seconds": round(seconds, 1)}
    atomic.write_json(metrics_path, metrics)
    names = list(params.tune.space)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=records.columns(names), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records.table(found, names))
    atomic.write_text(plot_path, buffer.getvalue())
    return best


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    model_stage.add_arguments(parser)
    parser.add_argument("--dir", type=Path, required=True, help="the search's working folder (not a DVC output)")
    parser.add_argument("--hparams", type=Path, required=True, help="the best hyperparameters (JSON)")
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--plot", type=Path, required=True, help="the objective of each trial (CSV)")


def main(params: Params, args: argparse.Namespace) -> None:
    name = model_stage.model(params, args)
    # the search's folder keeps one key's state and removes the others: never the data's folder or one around it
    atomic.keep_apart({"--dir": args.dir, "--hparams": args.hparams, "--metrics": args.metrics, "--plot": args.plot},
                      {"--data": args.data})  # fmt: skip
    started = time.monotonic()
    objective = None
    if params.tune.algorithm != NO_SEARCH:
        from pipeline.tuning import trial

        for line in moved_into_space(params, name):
            print(f"note: {line}")

        objective = trial.objective(params, name, args.data)
    found = run(params, name, args.data, args.dir, objective)
    best = write_outputs(params, name, found, args.hparams, args.metrics, args.plot, time.monotonic() - started)
    if best is None:
        print(f"tune {name}: no search (tune.algorithm none); train.{name} as set: {as_set(params, name)}")
        return
    print(f"tune {name}: best validation macro F1 {best.objective:.3f} (trial {best.trial_id}) with {best.hparams}")
