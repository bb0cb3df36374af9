"""Atomic outputs: a reader (or an interrupted run) sees the old file or the new one, never half of one.

A disk that cannot take the output (read-only, not writable, full) is one OutputError line naming the output, with
the temporary files already removed: the old output, if any, is still whole. An output given on top of an input (the
same path, inside an input folder, or around one) is refused before any work (``keep_apart``).
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import shutil
import tempfile
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

from pipeline.config.errors import OptionError, UserError


class OutputError(UserError, OSError):
    """An output cannot be written where it was asked for; the message names the path and what to do. ``errno``:
    the file system's own error, if one; ``needed``: bytes the write was short of, at least, where known."""

    needed: int | None = None


FULL = (errno.ENOSPC, errno.EDQUOT)
UNWRITABLE = {
    errno.EROFS: "is on a read-only file system",
    errno.EACCES: "is not writable (permission denied)",
    errno.EPERM: "is not writable (operation not permitted)",
}


def _existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists: the folder a write was refused in."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _size(n: int) -> str:
    if n < 1_000_000:
        return f"{n:,} bytes"
    return f"{n / 1_000_000:,.1f} MB" if n < 1_000_000_000 else f"{n / 1_000_000_000:,.1f} GB"


def _refused_here(exc: OSError, output: Path) -> bool:
    """Whether ``exc`` is the file system refusing a write of ``output``: a read-only or full disk always; a
    permission error only where it names a path beside the output (not, say, an input the block was reading)."""
    if exc.errno in FULL or exc.errno == errno.EROFS:
        return True
    if exc.errno not in UNWRITABLE or exc.filename is None:
        return False
    return Path(os.fsdecode(exc.filename)).resolve().is_relative_to(output.parent.resolve())


def unwritable(exc: OSError, output: Path, needed: int | None = None) -> OutputError:
    """The one-line OutputError for ``exc`` (a refusal of the file system) met while writing ``output``."""
    folder = _existing(output.parent)
    if exc.errno in FULL:
        free = shutil.disk_usage(folder).free
        need = f"; it needs at least {_size(needed)}" if needed else ""
        message = (
            f"cannot write {output}: the disk holding {folder} is full ({_size(free)} free{need}); free some space "
            "or give an output folder on another disk"
        )
    else:
        message = f"cannot write {output}: {folder} {UNWRITABLE[exc.errno]}; give an output folder you can write to"
    error = OutputError(message)
    error.errno, error.needed = exc.errno, needed
    return error


@contextlib.contextmanager
def reported(output: Path, needed: int | None = None) -> Iterator[None]:
    """Turn a file system's refusal (read-only, no permission, full) inside the block into ``unwritable``."""
    try:
        yield
    except OSError as exc:
        if not _refused_here(exc, output):
            raise
        raise unwritable(exc, output, needed or getattr(exc, "needed", None)) from exc


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
def target(path: str | Path, needed: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename. ``needed``: the bytes
    to be written, if known, for the message of a full disk."""
    path = Path(path)
    with reported(path, needed):
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
    with target(path, len(data)) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


@contextlib.contextmanager
def directory(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``path``; on success it replaces ``path`` whole."""
    path = Path(path)
    with reported(path):
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
        except OSError as exc:
            if exc.errno in FULL:  # what was written before the disk filled, and the write it failed, at least
                written = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file())
                exc.needed = written + (getattr(exc, "needed", None) or 0)
            raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def overlap(written: str | Path, read: str | Path) -> str | None:
    """How the output ``written`` meets the input ``read`` once both are resolved (links followed): "is", "is
    inside" or "holds"; None when they are apart (or a link loop makes one unresolvable: its write will fail)."""
    try:
        out, source = Path(written).resolve(), Path(read).resolve()
    except (OSError, RuntimeError):  # a link loop (RuntimeError before Python 3.13)
        return None
    if out == source:
        return "is"
    if out.is_relative_to(source):
        return "is inside"
    if source.is_relative_to(out):
        return "holds"
    return None


def keep_apart(outputs: Mapping[str, str | Path], inputs: Mapping[str, str | Path]) -> None:
    """OptionError, before any work, for an output that is an input, lies inside an input folder or holds one:
    written, it would replace or add to what the command reads (a folder output is replaced whole, so ``augment
    --out data/raw`` would delete the raw data). Keys name each path as the user gave it (an option)."""
    for option, written in outputs.items():
        for name, read in inputs.items():
            how = overlap(written, read)
            if how is None:
                continue
            shown = {p: f"{p} ({Path(p).resolve()})" if Path(p).resolve() != Path(p).absolute() else str(p)
                     for p in (written, read)}  # fmt: skip
            raise OptionError(
                f"{option} {shown[written]}: {how} {name} {shown[read]}, which this command reads and never writes; "
                f"give an output apart from it"
            )


def refuse_foreign(folder: str | Path, option: str, ours: Collection[str], command: str) -> None:
    """OptionError, before any work, when ``folder`` (an output that ``command`` replaces whole) is a file, or a
    folder holding anything but the entries ``ours`` that the command writes there itself: replacing it would delete
    what someone else put there (``convert-faces --out data`` would take data/raw with it)."""
    folder = Path(folder)
    if not folder.exists():
        return
    if not folder.is_dir():
        raise OptionError(f"{option} {folder}: is a file; give a folder (created if missing)")
    foreign = sorted(entry.name for entry in folder.iterdir() if entry.name not in ours)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise OptionError(
            f"{option} {folder}: holds {shown}, which {command} did not write; it replaces its {option} whole, so "
            f"give a new or empty folder, or one it wrote"
        )
