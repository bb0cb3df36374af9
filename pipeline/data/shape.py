"""One rule for the pictures every reader takes (validate, augment, evaluate; predict too): a minimum width and
height, a maximum aspect ratio, and no blank picture (fully transparent, or one colour throughout).

validate records a broken rule as a finding of the file; augment and evaluate, which read the images validate
passed, refuse one (a raw folder changed in between) rather than squash a 40x100000 strip to the model's square or
train on the hidden colours of a transparent picture.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.config import ValidateConfig
from pipeline.data import links
from pipeline.data.images import ImageReadError, decode_rgb

ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


@dataclass(frozen=True)
class Rule:
    min_width: int
    min_height: int
    max_aspect: float  # the longer side over the shorter one


def rule(cfg: ValidateConfig) -> Rule:
    return Rule(cfg.min_width, cfg.min_height, cfg.max_aspect)


def size_problem(width: int, height: int, picture: Rule) -> str | None:
    """What is wrong with a picture of ``width`` x ``height`` (upright), or None."""
    if width < picture.min_width:
        return f"{width}x{height} px, narrower than {picture.min_width} px"
    if height < picture.min_height:
        return f"{width}x{height} px, lower than {picture.min_height} px"
    aspect = max(width, height) / min(width, height)
    if aspect > picture.max_aspect:
        return (
            f"{width}x{height} px, an aspect ratio of {aspect:.1f}:1, past validate.max_aspect {picture.max_aspect:g} "
            "(it would be squashed to a square); crop it to the face"
        )
    return None


def alpha(data: bytes) -> np.ndarray | None:
    """The alpha channel of an encoded picture, or None when it has none (decoded only when it has one)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.mode not in ALPHA_MODES and "transparency" not in img.info:
                return None
            return np.asarray(img.convert("RGBA").getchannel("A"))
    except (OSError, SyntaxError, ValueError):
        return None  # not a format Pillow reads: the pixels' reader has judged it already


def blank_problem(rgb: np.ndarray, transparency: np.ndarray | None) -> str | None:
    """Whether the picture shows nothing: fully transparent (its hidden colours are not what a viewer sees), or a
    single colour throughout."""
    if transparency is not None and not transparency.any():
        return "a blank picture: fully transparent (nothing shows; its hidden colours are not read)"
    if rgb.size and (rgb == rgb[:1, :1]).all():
        return "a blank picture: one colour throughout"
    return None


def problem(rgb: np.ndarray, data: bytes, picture: Rule) -> str | None:
    """The rule, whole: what is wrong with the upright RGB picture ``rgb`` decoded from ``data``, or None."""
    return size_problem(rgb.shape[1], rgb.shape[0], picture) or blank_problem(rgb, alpha(data))


def read(path: Path, root: Path, picture: Rule) -> np.ndarray:
    """The picture at ``path`` (in the folder ``root``) as 8-bit RGB, refused (ImageReadError naming it) when it
    leads outside ``root`` or breaks the rule."""
    links.check(path, root)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot be read ({exc.strerror})") from None
    rgb = decode_rgb(data, str(path))
    why = problem(rgb, data, picture)
    if why:
        raise ImageReadError(f"{path}: {why}")
    return rgb
