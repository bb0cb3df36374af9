"""The trials table both searches produce: one record per trial, whichever algorithm or worker ran it."""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass
from typing import Any

COMPLETED = "COMPLETED"


@dataclass(frozen=True)
class Record:
    trial_id: str
    status: str  # COMPLETED, FAILED, or (a trial cut short and not yet rerun) RUNNING
    objective: float | None  # validation macro F1
    hparams: dict[str, Any]  # train.<model> overrides
    epochs: int | None  # per training phase
    seconds: float | None
    generation: int | None = None  # evolutionary search only
    cut_short: bool = False  # tune.trial_time_s stopped its training before its epochs were done

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def completed(records: list[Record]) -> list[Record]:
    return [r for r in records if r.status == COMPLETED and r.objective is not None]


def summary(records: list[Record]) -> dict[str, Any]:
    """What the search cost and what it got for it: the figures of metrics/tune/<model>.json besides the best."""
    done = completed(records)
    seconds = [r.seconds for r in done if r.seconds is not None]
    # the median: the first trial's graph tracing and Hyperband's longer trials do not set the typical cost
    return {
        "trials": len(done),
        "trials_cut_short": sum(r.cut_short for r in done),
        "failed_trials": len(records) - len(done),
        "seconds_per_trial": round(statistics.median(seconds), 1) if seconds else None,
    }


def best(records: list[Record]) -> Record:
    """The completed trial with the highest objective (the earliest of equals)."""
    done = completed(records)
    if not done:
        failed = [r for r in records if r.status != COMPLETED]
        raise RuntimeError(f"no trial completed ({len(failed)} failed or unfinished): nothing to choose from")
    return max(done, key=lambda r: r.objective)


def columns(names: list[str]) -> list[str]:
    return ["trial", "trial_id", "objective", "best_so_far", "epochs", "seconds", "cut_short", *names]


def table(records: list[Record], names: list[str]) -> list[dict[str, Any]]:
    """Rows of the objective-by-trial plot: completed trials in order, with the best value so far."""
    rows, best_so_far = [], float("-inf")
    for number, r in enumerate(completed(records), start=1):
        best_so_far = max(best_so_far, r.objective)
        rows.append(
            {
                "trial": number,
                "trial_id": r.trial_id,
                "objective": round(r.objective, 4),
                "best_so_far": round(best_so_far, 4),
                "epochs": r.epochs,
                "seconds": r.seconds,
                "cut_short": r.cut_short,
                **{n: r.hparams.get(n) for n in names},
            }
        )
    return rows
