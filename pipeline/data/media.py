"""Media to classify: image files, videos and folders of them, found in a stable order and read as RGB pictures.

An image is a file whose extension, spelled as the manifest records it (``manifest.extension``), is in the list the
caller gives (predict gives validate.allowed_extensions); a folder is searched with the manifest's own ``walk``, so
predict reads a folder in the order, and by the rule, that validation describes it. Nothing leaves the folder it
was found in: an image or video in a folder that is a symbolic link leading outside that folder (its own or a
subfolder's), or a file argument that is a link leading outside its own folder, is refused and never opened
(``pipeline/data/links.py``); a FIFO or device is never opened either (``manifest.unusable``). A picture follows the
rule every reader applies (``pipeline/data/shape.py``: minimum side, maximum aspect ratio, no blank still image);
a video, the size rule on its first frame.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.data import images, links, shape
from pipeline.data.images import ImageReadError
from pipeline.data.manifest import extension, linked_folders, unusable, walk

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


@dataclass(frozen=True)
class Found:
    """One file to read, or one argument that gives nothing to read (kind ``skipped`` or ``error``, with why)."""

    path: Path
    name: Path  # relative to the folder it was found in; a file argument's own name
    kind: str  # image | video | skipped | error
    message: str = ""
    folder: Path = Path(".")  # the folder it was found in, which it must not lead out of


def find(paths: list[Path], image_extensions: tuple[str, ...]) -> Iterator[Found]:
    """Every file under ``paths``: folders recursively (files of other kinds reported as skipped), a file argument
    as an image or video whatever its extension (reading it says whether it is one)."""
    known = {*image_extensions, *VIDEO_EXTENSIONS}
    for root in paths:
        if root.is_dir():
            yield from _folder(root, known)
        elif root.exists() or root.is_symlink():
            yield _checked(root, Path(root.name), root.parent)
        else:
            yield Found(root, Path(root.name), "error", "not found")


def _folder(root: Path, known: set[str]) -> Iterator[Found]:
    files = walk(root)
    media = [f for f in files if extension(f) in known]
    for f in files:
        if extension(f) not in known:
            yield Found(f, f.relative_to(root), "skipped", f"not an image or video ({f.suffix or 'no'} extension)")
    for link in linked_folders(root):  # the walk does not follow them: say so, and refuse one that leads out
        escape = links.escape(link, root)
        why = escape or "a symbolic link to a folder: not followed (give that folder itself)"
        yield Found(link, link.relative_to(root), "error" if escape else "skipped", why)
    if not media:
        yield Found(root, Path(root.name), "error", "no image or video files in this folder")
    yield from (_checked(f, f.relative_to(root), root) for f in media)


def _checked(path: Path, name: Path, folder: Path) -> Found:
    """``path`` to read, or refused unopened: a link out of ``folder``, a dangling link, a FIFO or a device."""
    why = links.escape(path, folder) or unusable(path)
    return Found(path, name, "error", why, folder) if why else Found(path, name, _kind(path), folder=folder)


def _kind(path: Path) -> str:
    return "video" if extension(path) in VIDEO_EXTENSIONS else "image"


def read(found: Found, frame_step: int, picture: shape.Rule) -> Iterator[tuple[int | None, np.ndarray]]:
    """(frame index, RGB) of an image (index None) or of every ``frame_step``-th frame of a video; ImageReadError
    naming the file when it cannot be decoded or breaks ``picture``, the rule of pipeline/data/shape.py."""
    try:
        if found.kind == "video":
            yield from _video_frames(found.path, frame_step, picture)
        else:
            yield None, shape.read(found.path, found.folder, picture)
    except cv2.error as exc:  # OpenCV asserts on some inputs (an empty buffer) instead of returning None
        reason = str(exc).strip().splitlines()[-1]
        raise ImageReadError(f"{found.path}: not a decodable image ({reason})") from None


def _video_frames(path: Path, step: int, picture: shape.Rule) -> Iterator[tuple[int, np.ndarray]]:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ImageReadError(f"{path}: not a video OpenCV can open")
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if width * height > images.MAX_PIXELS:  # the same cap as a still picture, from the stream's header
        capture.release()
        raise ImageReadError(
            f"{path}: video frames of {width}x{height} ({width * height:,} pixels) exceed the cap of "
            f"{images.MAX_PIXELS:,} pixels (images.MAX_PIXELS); give a smaller video"
        )
    try:
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            why = shape.size_problem(frame.shape[1], frame.shape[0], picture) if index == 0 else None
            if why:  # a blank frame (a fade to black) is an ordinary part of a video: the size rule only
                raise ImageReadError(f"{path}: video frames of {why}")
            if index % step == 0:
                yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            index += 1
    finally:
        capture.release()
    if index == 0:
        raise ImageReadError(f"{path}: no frame could be decoded")
