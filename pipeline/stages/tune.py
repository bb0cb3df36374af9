"""Stage `tune@<model>`: search train.<model>'s hyperparameters on the balanced data; the best go to hparams.json.

The search's working folder lives under `--dir` in a subfolder named by a key of everything the search depends on
(its definition in params, train.<model>, the data): a rerun with the same key resumes, a changed key starts afresh
and the stale folder is removed. The budget (tune.max_trials, tune.time_cap_s) is not in the key, so raising it
extends a search.

Distributed (Keras Tuner algorithms only): run this same command with KERASTUNER_TUNER_ID=chief on one machine
(through `dvc repro tune@<model>`: only the chief writes outputs) and with KERASTUNER_TUNER_ID=worker<N> on others,
all with KERASTUNER_ORACLE_IP/KERASTUNER_ORACLE_PORT pointing at the chief and `--dir` on a shared file system.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import shutil
import time
from pathlib import Path

from pipeline import atomic
from pipeline.config import ConfigError, Params
from pipeline.tuning import evolution, keras_search, records, space, trial
from pipeline.tuning.records import Record

# what is budget, not definition: changing it continues the same search
BUDGET_KEYS = ("max_trials", "time_cap_s")


def search_key(params: Params, name: str, index_file: Path) -> str:
    tune = {k: v for k, v in params.tune.model_dump().items() if k not in BUDGET_KEYS}
    blob = json.dumps(
        [tune, params.train[name].model_dump(), params.image_size, params.seed, params.classes], sort_keys=True
    )
    return hashlib.sha256(blob.encode() + index_file.read_bytes()).hexdigest()[:16]


def project_folder(root: Path, key: str, owner: bool) -> Path:
    """``root``/``key``; the owner (the chief, or a lone process) removes the folders of other keys."""
    if owner and root.exists():
        for stale in root.iterdir():
            if stale.name != key:
                print(f"tune: removing the stale search {stale}")
                shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    return root / key


def run(params: Params, name: str, data: Path, root: Path, objective: trial.Objective) -> list[Record] | None:
    """Search; the trials' records (None on a distributed worker, whose results are the chief's to report)."""
    tune = params.tune
    dims = space.dimensions(tune.space)
    baseline = space.baseline(dims, params.train[name])
    role = keras_search.role()
    if tune.algorithm == "evolutionary" and role != "single":
        raise ConfigError("tune.algorithm: distributed tuning (KERASTUNER_* set) runs Keras Tuner algorithms only")
    key = search_key(params, name, data / "index.csv")
    folder = project_folder(root, key, owner=role != "worker")
    if tune.algorithm == "evolutionary":
        return evolution.search(tune, dims, baseline, objective, folder, params.seed)
    return keras_search.search(tune, dims, baseline, objective, root, key, params.seed)


def write_outputs(
    params: Params, found: list[Record], hparams_path: Path, metrics_path: Path, plot_path: Path, seconds: float
) -> Record:
    best = records.best(found)
    names = list(params.tune.space)
    atomic.write_json(hparams_path, best.hparams)
    done = records.completed(found)
    atomic.write_json(
        metrics_path,
        {
            "algorithm": params.tune.algorithm,
            "objective": "val_macro_f1",
            "best_objective": round(best.objective, 4),
            "best_trial": best.trial_id,
            "best_hparams": best.hparams,
            "trials": len(done),
            "failed_trials": len(found) - len(done),
            "search_seconds": round(seconds, 1),
        },
    )
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=records.columns(names), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records.table(found, names))
    atomic.write_text(plot_path, buffer.getvalue())
    return best


def main(params: Params, argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline tune", description=__doc__)
    parser.add_argument("--model", required=True, choices=sorted(params.train))
    parser.add_argument("--data", type=Path, default=Path("data/balanced"))
    parser.add_argument("--dir", type=Path, help="search working folder, default: .tuner/<model>")
    parser.add_argument("--hparams", type=Path, help="best hyperparameters, default: models/<model>/hparams.json")
    parser.add_argument("--metrics", type=Path, help="default: metrics/tune/<model>.json")
    parser.add_argument("--plot", type=Path, help="objective by trial, default: plots/tune/<model>.csv")
    args = parser.parse_args(argv)
    name = args.model
    started = time.monotonic()
    found = run(params, name, args.data, args.dir or Path(f".tuner/{name}"), trial.objective(params, name, args.data))
    if found is None:
        print(f"tune {name}: worker done")
        return
    best = write_outputs(
        params,
        found,
        args.hparams or Path(f"models/{name}/hparams.json"),
        args.metrics or Path(f"metrics/tune/{name}.json"),
        args.plot or Path(f"plots/tune/{name}.csv"),
        time.monotonic() - started,
    )
    print(f"tune {name}: best validation macro F1 {best.objective:.3f} (trial {best.trial_id}) with {best.hparams}")
