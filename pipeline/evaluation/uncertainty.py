"""How far a Test figure could move with another draw of the Test split: a 95 % percentile bootstrap of accuracy and
macro F1. On 75 Test images (the study's size) macro F1 moves by about 0.1 either way, more than most differences
between two models, so every figure evaluate reports carries its interval.

Resampling is over the Test images, or over the subjects where ``augment.group_regex`` finds a subject id in every
Test file name: the pictures of one person are not independent draws, and resampling them one by one would make the
interval too narrow. A resample's macro F1 averages the classes that appear in it (as truth or as prediction), so a
rare class left out of a resample by chance does not count as a class scored zero.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.data import split

RESAMPLES = 1000
LEVEL = 0.95


def subjects(paths: pd.Series, group_regex: str | None) -> np.ndarray | None:
    """The subject id of each Test file, or None (resample by image) without a regex or where a name has none."""
    if not group_regex:
        return None
    try:
        return split.group_keys(paths, group_regex).to_numpy()
    except split.SplitError:
        return None


def interval(labels: np.ndarray, predicted: np.ndarray, seed: int, groups: np.ndarray | None = None) -> dict:
    """The 95 % bootstrap interval of accuracy and macro F1 of ``predicted`` against ``labels`` (class indices)."""
    units = [np.flatnonzero(groups == g) for g in dict.fromkeys(groups)] if groups is not None else None
    count = len(units) if units is not None else len(labels)
    classes = int(max(labels.max(), predicted.max())) + 1
    rng = np.random.default_rng(seed)
    accuracy, macro_f1 = np.empty(RESAMPLES), np.empty(RESAMPLES)
    for i in range(RESAMPLES):
        drawn = rng.integers(0, count, count)
        index = np.concatenate([units[d] for d in drawn]) if units is not None else drawn
        truth, guess = labels[index], predicted[index]
        accuracy[i] = np.mean(truth == guess)
        macro_f1[i] = _macro_f1(truth, guess, classes)
    tails = [100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2]
    low_high = {name: [round(float(v), 4) for v in np.percentile(draws, tails)] for name, draws in
                (("accuracy", accuracy), ("macro_f1", macro_f1))}  # fmt: skip
    return {
        "level": LEVEL,
        "resamples": RESAMPLES,
        "by": "subject" if units is not None else "image",
        "units": count,
        **{name: {"low": low, "high": high} for name, (low, high) in low_high.items()},
    }


def _macro_f1(truth: np.ndarray, guess: np.ndarray, classes: int) -> float:
    """sklearn's f1_score(truth, guess, average="macro", zero_division=0), from one confusion matrix: a thousand
    resamples take milliseconds instead of seconds (tests/unit/test_uncertainty.py compares the two)."""
    confusion = np.bincount(truth * classes + guess, minlength=classes * classes).reshape(classes, classes)
    hits = np.diag(confusion)
    counted = confusion.sum(axis=0) + confusion.sum(axis=1)  # 2 TP + FP + FN per class
    present = counted > 0
    return float(np.mean(2 * hits[present] / counted[present]))
