"""Map folder names on disk to the class names of params.yaml."""

from __future__ import annotations


def normalise(folder: str, classes: list[str], aliases: dict[str, str]) -> str | None:
    """Return the class a folder holds, matching names and aliases case-insensitively; None when unknown.

    The Kaggle data names its neutral folder ``Natural``; other datasets say ``neutral`` or ``happy``.
    """
    key = folder.strip().casefold()
    for name in classes:
        if name.casefold() == key:
            return name
    for alias, name in aliases.items():
        if alias.casefold() == key:
            return name
    return None


def split_of(folder: str, split_folders: dict[str, str]) -> str | None:
    """Return 'train' or 'test' for a top-level folder such as ``Train``; None when it is neither."""
    key = folder.strip().casefold()
    for split, name in split_folders.items():
        if name.casefold() == key or split == key:
            return split
    return None
