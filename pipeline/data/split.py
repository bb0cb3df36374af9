"""Train/validation split of the Train folder: stratified by class, seeded, optionally grouped by subject."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold


def group_keys(paths: pd.Series, pattern: str) -> pd.Series:
    """The subject id a regex takes from each file name (its named group ``group``, else its first group)."""
    regex = re.compile(pattern)
    keys = []
    for path in paths:
        name = path.rsplit("/", 1)[-1]
        match = regex.search(name)
        if not match:
            raise ValueError(f"{path}: file name does not match augment.group_regex {pattern!r}")
        keys.append(match.groupdict().get("group") or (match.group(1) if regex.groups else match.group(0)))
    return pd.Series(keys, index=paths.index)


def train_val_split(train: pd.DataFrame, val_fraction: float, seed: int, group_regex: str | None) -> pd.Series:
    """Return 'train' or 'val' for each row of the Train split.

    Every class keeps at least one training image (so a class with a single image still trains and balances).
    With ``group_regex`` whole groups (e.g. one child) go to one side, so nobody appears on both.
    """
    side = pd.Series("train", index=train.index)
    if val_fraction <= 0:
        return side
    if group_regex:
        groups = group_keys(train["path"], group_regex)
        folds = max(2, round(1 / val_fraction))
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        _, val_idx = next(splitter.split(train, train["label"], groups))
        side.iloc[val_idx] = "val"
        starved = sorted(set(train["label"]) - set(train.loc[side == "train", "label"]))
        if starved:
            raise ValueError(
                f"grouped split left no training image for class(es) {starved}: "
                "lower augment.val_fraction or add subjects"
            )
        return side
    rng = np.random.default_rng(seed)
    for _, rows in train.groupby("label", sort=True):
        order = rng.permutation(rows.index.to_numpy())
        n_val = min(round(len(order) * val_fraction), len(order) - 1)
        side[order[:n_val]] = "val"
    return side
