"""Symbolic links in an input folder: a file that leads outside the folder is never opened.

A link such as ``s.jpg -> /etc/shadow`` inside the raw data would otherwise be read, hashed and described like any
image, and what a stage says about a file it cannot decode must never carry that file's content. A link to another
file inside the folder is followed as before (a copy of one picture under two names, say): only the way out is shut.
"""

from __future__ import annotations

import os
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
    target = os.readlink(file) if file.is_symlink() else resolved
    return f"a symbolic link to {target}, outside {root}: never opened; put the image itself in the folder"


def check(file: Path, root: Path) -> None:
    """Refuse ``file`` (ImageReadError naming it) when it leads outside ``root``: what augment and evaluate call
    before they open an image the manifest names, in case the folder changed after validate."""
    why = escape(file, root)
    if why:
        raise ImageReadError(f"{file}: {why}")
