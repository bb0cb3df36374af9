"""Paths and names that reach where they should not: an input that leads outside its folder, a name that forges a line.

A link such as ``s.jpg -> /etc/shadow`` inside the raw data would otherwise be read, hashed and described like any
image, and what a stage says about a file it cannot decode must never carry that file's content. A link to another
file inside the folder is followed as before (a copy of one picture under two names, say): only the way out is shut.

A file name is shown with its control characters escaped (``printable``): a name is data, and a newline or an escape
sequence in it must not forge or hide a line of a message. (The other way round, an output on top of an input, is
``atomic.keep_apart``'s.)
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

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


# what a terminal acts on rather than shows: C0 and C1 controls (newline, escape, ...), line and paragraph
# separators, and the bidirectional overrides and isolates that reorder what follows them
ACTING = {"Cc", "Zl", "Zp"}
BIDI = set(map(chr, [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]))


def printable(text: str, keep: str = "") -> str:
    """``text`` with each character a terminal would act on (a control such as a newline or an escape, a line
    separator, a bidirectional override), but those in ``keep``, written as its escape (``\\n``, ``\\x1b``,
    ``\\u202e``); every other character, spaces and joiners of any script included, as it is."""
    return "".join(
        c if c in keep or (unicodedata.category(c) not in ACTING and c not in BIDI) else repr(c)[1:-1] for c in text
    )
