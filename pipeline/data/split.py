"""Train/validation split of the Train folder: stratified by class, seeded, optionally grouped by subject."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from pipeline.config import UserError
from pipeline.data.groups import Groups


class SplitError(UserError, ValueError):
    """The Train split cannot be made as params ask; the message names the files or the key to change."""


def group_keys(paths: pd.Series, pattern: str) -> pd.Series:
    """The subject id a regex takes from each file name (its named group ``group``, else its first group)."""
    regex = re.compile(pattern)
    keys, unmatched = [], []
    for path in paths:
        match = regex.search(path.rsplit("/", 1)[-1])
        if not match:
            unmatched.append(path)
            continue
        keys.append(match.groupdict().get("group") or (match.group(1) if regex.groups else match.group(0)))
    if unmatched:
        shown = ", ".join(unmatched[:5]) + (f" and {len(unmatched) - 5} more" if len(unmatched) > 5 else "")
        which = "no Train file name" if len(unmatched) == len(paths) else f"{len(unmatched)} Train file names"
        raise SplitError(
            f"augment.group_regex {pattern!r} matches {which} ({shown}): every file name must carry its subject id "
            "where the pattern finds it; fix the pattern, or set it to null for an ungrouped split"
        )
    return pd.Series(keys, index=paths.index)


def _merged(keys: pd.Series, copies: pd.Series) -> pd.Series:
    """``keys`` with every two keys that share a picture (``copies``: the manifest's duplicate_of) made one."""
    groups = Groups()
    for key, copy in zip(keys, copies, strict=True):
        if isinstance(copy, str):
            groups.join(str(key), f"copy:{copy}")
    return keys.map(lambda k: groups.find(str(k)))


def train_val_split(
    train: pd.DataFrame, val_fraction: float, seed: int, group_regex: str | None, copies: pd.Series | None = None
) -> pd.Series:
    """Return 'train' or 'val' for each row of the Train split.

    Every class keeps at least one training image (so a class with a single image still trains and balances).
    With ``group_regex`` whole groups (e.g. one child) go to one side, so nobody appears on both. Copies of one
    picture (``copies``, the manifest's duplicate_of) always go to one side together: validation must not score a
    picture the model trained on.
    """
    side = pd.Series("train", index=train.index)
    if val_fraction <= 0:
        return side
    copies = copies if copies is not None else pd.Series([None] * len(train), index=train.index, dtype=object)
    if group_regex:
        groups = _merged(group_keys(train["path"], group_regex), copies)
        folds = max(2, round(1 / val_fraction))
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        _, val_idx = next(splitter.split(train, train["label"], groups))
        side.iloc[val_idx] = "val"
        starved = sorted(set(train["label"]) - set(train.loc[side == "train", "label"]))
        if starved:
            raise SplitError(
                f"grouped split left no training image for class(es) {starved}: "
                "lower augment.val_fraction or add subjects"
            )
        return side
    groups = _merged(train["path"], copies)
    rng = np.random.default_rng(seed)
    for _, rows in train.groupby("label", sort=True):
        order = rng.permutation(rows.index.to_numpy())
        n_val = min(round(len(order) * val_fraction), len(order) - 1)
        taken = 0
        for idx in order:  # without copies: the first n_val rows of the shuffled class, as ever
            if taken >= n_val:
                break
            members = rows.index[groups[rows.index] == groups[idx]]
            if side[idx] == "val" or taken + len(members) > n_val:
                continue
            side[members] = "val"
            taken += len(members)
    return side
