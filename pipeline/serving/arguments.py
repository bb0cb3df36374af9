"""What predict refuses in its arguments before any work (before a model is loaded or a picture read): a URL, which
is not a local file, and an ``--out`` or ``--annotate`` that would write over an input or the model file.

An input is every path given and every file found in a folder given (pictures, videos, and the files predict skips);
two paths are the same file when they name the same inode, so a symbolic or hard link to an input is the input.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from pipeline import atomic
from pipeline.config import OptionError
from pipeline.data import media

URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def local_paths(arguments: Iterable[str]) -> list[Path]:
    """The path arguments as paths; OptionError on the first URL (``https://…``, ``s3://…``, any ``scheme://``), which
    a path would silently turn into ``https:/…``, a local file that does not exist."""
    paths = []
    for argument in arguments:
        if URL.match(argument):
            raise OptionError(f"{argument} is a URL: download it first (predict reads local files)")
        paths.append(Path(argument))
    return paths


def _identity(path: Path) -> tuple[int, int] | None:
    """The file ``path`` names (its links followed), or None when there is none."""
    try:
        st = path.stat()
    except (OSError, RuntimeError):
        return None
    return st.st_dev, st.st_ino


def _sources(name: str) -> list[tuple[str, str]]:
    """The (file name, kind) of the inputs whose annotated copy or Grad-CAM strip would be called ``name``
    (``a.jpg.png``, ``a.jpg_face0_gradcam.png``, ``clip.mp4_frame000010.png``, …)."""
    if not name.endswith(".png"):
        return []
    base = name.removesuffix(".png")
    strip = re.fullmatch(r"(.+)_face\d+_gradcam", base)
    found = []
    for stem in [base, strip[1]] if strip else [base]:
        found.append((stem, "image"))
        frame = re.fullmatch(r"(.+)_frame\d{6,}", stem)
        if frame:
            found.append((frame[1], "video"))
    return found


def refuse_overwrites(
    found: list[media.Found], out: Path | None, annotate: Path | None, model_files: list[Path], folders: list[Path]
) -> None:
    """OptionError naming the option and the file when writing ``out`` or an annotated copy into ``annotate`` would
    replace one of the inputs ``found`` or a model file, when ``annotate`` is (or is inside) one of the input
    ``folders`` given, or when a copy would be written through a link out of ``annotate``."""
    protected = {_identity(m): f"the model file {m}" for m in model_files}
    protected |= {_identity(f.path): f"the input {f.path}" for f in found}
    protected.pop(None, None)
    hit = protected.get(_identity(out)) if out is not None else None
    if hit:
        raise OptionError(f"--out {out}: would overwrite {hit}; give another file for the rows")
    if annotate is None:
        return
    copies = {((annotate / f.name).parent, f.name.name, f.kind): f.path for f in found if f.kind in ("image", "video")}
    root = annotate.resolve()
    for folder in sorted({folder for folder, _, _ in copies}):
        if not folder.resolve().is_relative_to(root):  # a folder of the same name there links elsewhere
            raise OptionError(
                f"--annotate {annotate}: {folder} leads outside it through a symbolic link; annotated copies are "
                f"never written through one: remove the link or give another folder"
            )
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            hit = protected.get(_identity(entry))
            source = next((copies[folder, *s] for s in _sources(entry.name) if (folder, *s) in copies), None)
            if hit and source:
                raise OptionError(
                    f"--annotate {annotate}: the annotated copy of {source} would overwrite {hit}; give another folder"
                )
    for given in folders:
        how = atomic.overlap(annotate, given)
        if how in ("is", "is inside"):  # copies there would be read as pictures the next time
            raise OptionError(
                f"--annotate {annotate}: {how} the input folder {given}, where the annotated copies would be "
                f"read as pictures the next time; give a folder outside it"
            )
