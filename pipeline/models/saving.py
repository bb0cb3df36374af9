"""A model file whose bytes depend on the model only: the same weights saved twice give the same file.

Keras's .keras file is a zip archive that stamps each member with the time of the save, writes that time into its
metadata.json too (``date_saved``), and numbers the objects that several layers share (their dtype policy) in
config.json by their memory addresses (``shared_object_id``). Two identical trainings, bit for bit the same weights,
would then give two different files, and DVC two hashes: `dvc.lock` and every cache key after the model would change
on a rerun that changed nothing. ``save`` writes the archive again with the zip format's fixed earliest time
(1980-01-01) on every member, without ``date_saved`` (Keras writes it but never reads it), and with the shared
objects numbered 1, 2, ... in the order they first appear (the loader only matches equal numbers); the weights file
is kept byte for byte.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import keras

from pipeline import atomic

EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip member can carry
METADATA, CONFIG = "metadata.json", "config.json"
SHARED = "shared_object_id"


def save(model: keras.Model, out: Path) -> None:
    """``model.save`` to ``out`` (a .keras file), atomically, with no trace of when it was saved."""
    with atomic.target(out) as written:
        model.save(written)
        with atomic.target(written) as tmp:  # replaces the file Keras wrote, before it replaces ``out``
            normalise(written, tmp)


def normalise(archive: Path, out: Path) -> None:
    """``archive`` (a .keras zip) written to ``out`` with fixed member times and no save date, in member order."""
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(out, "w") as target:
        for member in source.infolist():
            data = source.read(member)
            if member.filename == METADATA:
                data = json.dumps({k: v for k, v in json.loads(data).items() if k != "date_saved"}).encode()
            elif member.filename == CONFIG:
                data = json.dumps(renumbered(json.loads(data), {})).encode()
            fixed = zipfile.ZipInfo(member.filename, EPOCH)
            fixed.compress_type, fixed.external_attr = member.compress_type, member.external_attr
            target.writestr(fixed, data)


def renumbered(node: object, ids: dict) -> object:
    """``node`` (a parsed config.json) with each distinct shared_object_id replaced by its rank of first appearance."""
    if isinstance(node, dict):
        return {k: ids.setdefault(v, len(ids) + 1) if k == SHARED else renumbered(v, ids) for k, v in node.items()}
    if isinstance(node, list):
        return [renumbered(v, ids) for v in node]
    return node
