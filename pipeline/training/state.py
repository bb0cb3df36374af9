"""Working state that survives a crash (a training's backups, a search's trials), kept per set of inputs.

A stage's state folder is named by a key of everything its result depends on: a rerun with the same inputs resumes,
a rerun with a changed knob or dataset starts afresh, and the state of other inputs is removed as stale.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

KEY_LENGTH = 16


def inputs_key(settings: Any, data_index: Path) -> str:
    """A short hash of ``settings`` (anything JSON can write) and the bytes of the data's index file."""
    blob = json.dumps(settings, sort_keys=True).encode() + data_index.read_bytes()
    return hashlib.sha256(blob).hexdigest()[:KEY_LENGTH]


def is_key(name: str) -> bool:
    """Whether ``name`` is one that ``inputs_key`` gives (16 hexadecimal digits)."""
    return len(name) == KEY_LENGTH and all(c in "0123456789abcdef" for c in name)


def keyed_folder(root: Path, key: str) -> Path:
    """``root/key``, created; the folders of other keys under ``root`` are stale and removed. Nothing else in
    ``root`` is touched: a root given by mistake (the data's folder, the models') loses nothing."""
    if root.exists():
        for stale in root.iterdir():
            if stale.name != key and is_key(stale.name) and stale.is_dir() and not stale.is_symlink():
                print(f"removing stale state {stale} (its inputs have changed)")
                shutil.rmtree(stale)
    folder = root / key
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def discard(folder: Path) -> None:
    """Remove a finished state folder, and its root once no other state is left in it."""
    shutil.rmtree(folder, ignore_errors=True)
    if folder.parent.exists() and not any(folder.parent.iterdir()):
        folder.parent.rmdir()
