"""Atomic outputs: a reader (or an interrupted run) sees the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class OutputError(OSError):
    """An output cannot be written where it was asked for; the message names the path and what to do."""


def inside(folder: str | Path, *parts: str | Path, shown: str | Path | None = None) -> Path:
    """``folder`` joined with ``parts``, refused unless it stays inside ``folder`` once resolved: names that come
    from params or data (a class, a file) must never lead a write elsewhere (``..``, an absolute path, a link).
    ``shown``: the folder the message names (the output itself, where ``folder`` is its temporary stand-in)."""
    folder = Path(folder)
    path = folder.joinpath(*parts)
    if not path.resolve().is_relative_to(folder.resolve()):
        rel = Path(*parts).as_posix()
        where = shown if shown is not None else folder
        raise OutputError(f"{rel!r} leads outside the output folder {where}: refused, nothing is written there")
    return path


@contextlib.contextmanager
def target(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # end with the full name: some writers (Keras, cv2) choose the format by suffixes such as ".weights.h5"
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=f"-{path.name}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes) -> None:
    with target(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


@contextlib.contextmanager
def directory(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``path``; on success it replaces ``path`` whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        # left by a run that was killed (no `finally` runs on SIGKILL); one stage writes an output at a time
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; an output folder is as readable as any other
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
