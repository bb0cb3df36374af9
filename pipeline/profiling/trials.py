"""What one tuning trial costs on this machine: a real trial of the tune stage (pipeline/tuning/trial.py), baseline
hyperparameters, on the augment stage's output, timed from building the model to its validation score."""

from __future__ import annotations

import time
from pathlib import Path

from pipeline.config import Params
from pipeline.tuning.trial import objective


def trial_costs(params: Params, data: Path) -> list[dict] | str:
    """Per model, the seconds of one trial at params.yaml's tune budget (epochs_per_trial, trial_time_s,
    subset_per_class); a sentence instead when the augment stage's output is not there to train on."""
    if not (data / "index.csv").is_file():
        return f"not measured: {data}/index.csv is missing (run `dvc repro augment` first)"
    tune, figures = params.tune, []
    for name in params.train:
        started = time.perf_counter()
        outcome = objective(params, name, data)({}, tune.epochs_per_trial)
        figures.append(
            {
                "model": name,
                "image_size": params.image_size,
                "epochs": tune.epochs_per_trial,
                "trial_time_s": tune.trial_time_s,
                "subset_per_class": tune.subset_per_class,
                "seconds": round(time.perf_counter() - started, 1),
                "cut_short": outcome.cut_short,
                "val_macro_f1": round(outcome.score, 4),
            }
        )
        print(f"bench tune trial {name}: {figures[-1]['seconds']} s", flush=True)
    return figures
