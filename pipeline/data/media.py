"""Media to classify: image files, videos and folders of them, found in a stable order and read as RGB pictures.

An image is a file whose extension, spelled as the manifest records it (``manifest.extension``), is in the list the
caller gives (predict gives validate.allowed_extensions); a folder is searched with the manifest's own ``walk``, so
predict reads a folder in the order, and by the rule, that validation describes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.data import images
from pipeline.data.images import ImageReadError, read_rgb
from pipeline.data.manifest import extension, walk

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


@dataclass(frozen=True)
class Found:
    """One file to read, or one argument that gives nothing to read (kind ``skipped`` or ``error``, with why)."""

    path: Path
    name: Path  # relative to the folder it was found in; a file argument's own name
    kind: str  # image | video | skipped | error
    message: str = ""


def find(paths: list[Path], image_extensions: tuple[str, ...]) -> Iterator[Found]:
    """Every file under ``paths``: folders recursively (files of other kinds reported as skipped), a file argument
    as an image or video whatever its extension (reading it says whether it is one)."""
    known = {*image_extensions, *VIDEO_EXTENSIONS}
    for root in paths:
        if root.is_dir():
            files = walk(root)
            media = [f for f in files if extension(f) in known]
            for f in files:
                if extension(f) not in known:
                    why = f"not an image or video ({f.suffix or 'no'} extension)"
                    yield Found(f, f.relative_to(root), "skipped", why)
            if not media:
                yield Found(root, Path(root.name), "error", "no image or video files in this folder")
            yield from (Found(f, f.relative_to(root), _kind(f)) for f in media)
        elif root.exists():
            yield Found(root, Path(root.name), _kind(root))
        else:
            yield Found(root, Path(root.name), "error", "not found")


def _kind(path: Path) -> str:
    return "video" if extension(path) in VIDEO_EXTENSIONS else "image"


def read(found: Found, frame_step: int) -> Iterator[tuple[int | None, np.ndarray]]:
    """(frame index, RGB) of an image (index None) or of every ``frame_step``-th frame of a video; ImageReadError
    naming the file when it cannot be decoded."""
    try:
        if found.kind == "video":
            yield from _video_frames(found.path, frame_step)
        else:
            yield None, read_rgb(found.path)
    except cv2.error as exc:  # OpenCV asserts on some inputs (an empty buffer) instead of returning None
        reason = str(exc).strip().splitlines()[-1]
        raise ImageReadError(f"{found.path}: not a decodable image ({reason})") from None


def _video_frames(path: Path, step: int) -> Iterator[tuple[int, np.ndarray]]:
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
            if index % step == 0:
                yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            index += 1
    finally:
        capture.release()
    if index == 0:
        raise ImageReadError(f"{path}: no frame could be decoded")
