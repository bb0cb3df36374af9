"""Paths that reach where they should not: an input that leads outside its folder, an output that lands on an input.

A link such as ``s.jpg -> /etc/shadow`` inside the raw data would otherwise be read, hashed and described like any
image, and what a stage says about a file it cannot decode must never carry that file's content. A link to another
file inside the folder is followed as before (a copy of one picture under two names, say): only the way out is shut.

The other way round, an output given as the input folder, inside it or around it (``augment --out data/raw``) would
be written over what the command reads: a folder output replaces its path whole, so the raw data would be gone.
``keep_apart`` refuses such an output before any work. And a file name is shown with its control characters escaped
(``printable``): a name is data, and a newline or an escape sequence in it must not forge or hide a line of a message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pipeline.config.errors import OptionError
from pipeline.data.images import ImageReadError


def escape(file: Path, root: Path) -> str | None:
    """Why ``file``, found under the folder ``root``, must not be opened because it leads outside ``root`` through
    a symbolic link (its own or a folder's on the way), or None. A dangling link or a loop is not judged here."""
    try:
        resolved = file.resolve()
        inside = resolved.is_relative_to(Path(root).resolve())
    except (OSError, RuntimeError):  # a link loop (RuntimeError before Python 3.13): the caller names it
        return None
    if inside:
        return None
    if file.is_symlink():
        return (
            f"a symbolic link to {os.readlink(file)}, outside {root}: never opened; put the image itself in the folder"
        )
    if not Path(os.path.normpath(file)).is_relative_to(os.path.normpath(root)):  # `..` or an absolute path: no link
        return f"a path that leads outside {root}: never opened; name a file inside the folder"
    where = f"through a symbolic link on the way, to {resolved}, outside {root}"  # a folder of the path links out
    return f"{where}: never opened; put the image itself in the folder"


def check(file: Path, root: Path) -> None:
    """Refuse ``file`` (ImageReadError naming it) when it leads outside ``root``: what augment and evaluate call
    before they open an image the manifest names, in case the folder changed after validate."""
    why = escape(file, root)
    if why:
        raise ImageReadError(f"{file}: {why}")


def overlap(written: Path, read: Path) -> str | None:
    """How the output ``written`` meets the input ``read`` once both are resolved (links followed): "is", "is
    inside" or "holds"; None when they are apart."""
    out, source = Path(written).resolve(), Path(read).resolve()
    if out == source:
        return "is"
    if out.is_relative_to(source):
        return "is inside"
    if source.is_relative_to(out):
        return "holds"
    return None


def keep_apart(outputs: Mapping[str, Path], inputs: Mapping[str, Path]) -> None:
    """Refuse (OptionError naming both) an output that is an input, lies inside an input folder or holds an input:
    writing it would replace or add to what the command reads. Keys name each path as the user gave it (an option)."""
    for option, written in outputs.items():
        for name, read in inputs.items():
            how = overlap(written, read)
            if how:
                raise OptionError(
                    f"{option} {written}: {how} {name} {read}, which this command reads and never writes; "
                    f"give an output outside it"
                )


def printable(text: str, keep: str = "") -> str:
    """``text`` with every control character but those in ``keep`` written as an escape (``\\n``, ``\\x1b``)."""
    return "".join(c if c in keep or c.isprintable() else repr(c)[1:-1] for c in text)
