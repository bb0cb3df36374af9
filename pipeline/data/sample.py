"""Procedural sample dataset: cartoon faces showing six emotions, in the Kaggle "Autistic Children Emotions" layout.

The pipeline has to run end to end offline and in CI without the real photographs, so this module draws stand-ins.
The emotion is carried only by facial geometry (brows, eyelids, mouth). Identity (skin, hair, eyes, clothes), pose,
background, lighting and camera noise come from one distribution shared by every class, so a model cannot score by
colour, brightness, position or file size. Each image has its own numpy Generator keyed by (seed, split, class,
index): a seed gives byte-identical files whatever the drawing order, and the contact sheet shows the first Train faces.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np

from pipeline import atomic
from pipeline.data.images import write_png

FOLDERS = {
    "joy": "joy",
    "sadness": "sadness",
    "fear": "fear",
    "anger": "anger",
    "surprise": "surprise",
    "natural": "Natural",
}
SPLITS = {"train": "Train", "test": "Test"}
JPEG_QUALITY = 90

# Faces are drawn upright on a fixed canvas, so feature code works in fixed pixel units; _place() then scales, rotates
# and moves the drawing into the output frame. CX, CY is the head centre on that canvas.
CANVAS, CX, CY = 320, 160, 140
_AA, _SHIFT = cv2.LINE_AA, 3  # polygon points carry 3 fractional bits, for smooth curves on a small canvas
_YY, _XX = np.mgrid[0:CANVAS, 0:CANVAS].astype(np.float32)
_NAME_STREAM = 2  # seed-sequence tag of the file-name shuffle; images use tag 1

# Palettes (BGR). Skin is a light-to-dark continuum sampled between anchors.
_SKIN = np.array(
    [[215, 228, 250], [180, 205, 240], [140, 180, 225], [105, 150, 200], [75, 115, 165], [55, 85, 125], [40, 60, 90]],
    dtype=np.float64,
)
_HAIR = [(20, 22, 25), (30, 45, 70), (40, 70, 110), (90, 160, 210), (40, 70, 150), (160, 160, 165)]
_IRIS = [(30, 60, 100), (20, 35, 55), (160, 120, 70), (90, 130, 80), (50, 100, 130)]

# Expression parameters, as (low, high) ranges or fixed values; lengths in units of the head's half-width, tear and
# frown are probabilities. A face starts from _NEUTRAL, takes its emotion's upper-face spec, then one mouth variant.
Spec = dict[str, float | tuple[float, float]]
_NEUTRAL: Spec = {
    "brow_raise": (-0.01, 0.03),
    "brow_tilt": (-0.015, 0.015),
    "brow_arch": (0.02, 0.05),
    "brow_in": (0.0, 0.03),
    "eye_open": (0.42, 0.55),
    "eye_scale": (0.95, 1.05),
    "lid_cover": (0.0, 0.1),
    "lid_tilt": 0.0,
    "lower_lid": 0.0,
    "iris": (0.52, 0.6),
    "mouth_w": (0.3, 0.4),
    "mouth_curve": (-0.015, 0.025),
    "mouth_open": 0.0,
    "mouth_top": 0.5,
    "mouth_round": 0.5,
    "teeth": 0,
    "cheek": 0,
    "tear": 0.0,
    "frown": 0.0,
}
_EMOTIONS: dict[str, tuple[Spec, list[Spec]]] = {
    "natural": ({}, [{}]),
    "joy": (
        {"brow_raise": (0.02, 0.06), "eye_open": (0.3, 0.42), "lower_lid": (0.25, 0.45), "cheek": 1},
        [
            {"mouth_w": (0.45, 0.58), "mouth_curve": (0.13, 0.2)},
            {
                "mouth_w": (0.45, 0.58),
                "mouth_curve": (0.12, 0.18),
                "mouth_open": (0.16, 0.26),
                "mouth_top": (0.04, 0.12),
                "mouth_round": 0.8,
                "teeth": 1,
            },
        ],
    ),
    "sadness": (
        {
            "brow_tilt": (0.08, 0.13),
            "brow_arch": (-0.02, 0.01),
            "brow_in": (0.03, 0.07),
            "eye_open": (0.36, 0.46),
            "lid_cover": (0.2, 0.35),
            "lid_tilt": (-0.5, -0.3),
            "tear": 0.5,
        },
        [{"mouth_w": (0.28, 0.38), "mouth_curve": (-0.17, -0.11)}],
    ),
    "fear": (
        {
            "brow_raise": (0.07, 0.11),
            "brow_tilt": (0.05, 0.09),
            "brow_arch": (-0.01, 0.02),
            "brow_in": (0.06, 0.1),
            "eye_open": (0.8, 0.95),
            "eye_scale": (1.05, 1.15),
            "iris": (0.36, 0.44),
        },
        [
            {
                "mouth_w": (0.42, 0.52),
                "mouth_curve": (-0.06, -0.02),
                "mouth_open": (0.15, 0.21),
                "mouth_round": (0.4, 0.6),
            },
            {
                "mouth_w": (0.42, 0.52),
                "mouth_curve": (-0.06, -0.02),
                "mouth_open": (0.16, 0.21),
                "mouth_round": 0.4,
                "teeth": 1,
            },
        ],
    ),
    "anger": (
        {
            "brow_raise": (-0.06, -0.03),
            "brow_tilt": (-0.13, -0.09),
            "brow_arch": (-0.01, 0.02),
            "brow_in": (0.06, 0.1),
            "eye_open": (0.3, 0.4),
            "lid_tilt": (0.35, 0.55),
            "lid_cover": (0.05, 0.15),
            "frown": 0.7,
        },
        [
            {"mouth_w": (0.28, 0.36), "mouth_curve": (-0.06, -0.02)},
            {
                "mouth_w": (0.34, 0.44),
                "mouth_curve": (-0.05, -0.02),
                "mouth_open": (0.08, 0.11),
                "mouth_round": (0.2, 0.3),
                "teeth": 2,
            },
        ],
    ),
    "surprise": (
        {
            "brow_raise": (0.13, 0.18),
            "brow_tilt": (0.0, 0.03),
            "brow_arch": (0.07, 0.11),
            "eye_open": (0.85, 1.0),
            "eye_scale": (1.05, 1.15),
            "iris": (0.4, 0.48),
        },
        [{"mouth_w": (0.13, 0.19), "mouth_curve": 0.0, "mouth_open": (0.22, 0.3)}],
    ),
}


class _Look:
    """Who is pictured: drawn from one distribution for every emotion, so identity never hints at the label."""

    def __init__(self, rng: np.random.Generator) -> None:
        k, anchors = rng.uniform(0, len(_SKIN) - 1), np.arange(len(_SKIN))
        self.skin = np.clip([np.interp(k, anchors, _SKIN[:, ch]) for ch in range(3)] + rng.normal(0, 5, 3), 0, 255)
        self.hair = np.clip(np.array(_HAIR[rng.integers(len(_HAIR))]) + rng.normal(0, 8, 3), 0, 255)
        self.iris = np.array(_IRIS[rng.integers(len(_IRIS))], dtype=np.float64)
        self.shirt = rng.uniform(30, 230, 3)
        self.hair_style = int(rng.integers(4))  # 0 none, 1 cap, 2 long, 3 curly
        self.hairline, self.sweep = rng.uniform(0.55, 0.72), rng.uniform(-0.12, 0.12)
        self.rx, self.ry, self.jaw = rng.uniform(62, 72), rng.uniform(80, 90), rng.uniform(0.05, 0.2)
        self.eye_dx, self.eye_w = self.rx * rng.uniform(0.36, 0.42), self.rx * rng.uniform(0.17, 0.2)
        self.eye_y, self.mouth_y = CY + self.ry * rng.uniform(-0.02, 0.06), CY + self.ry * rng.uniform(0.5, 0.58)
        self.gaze = rng.uniform(-0.25, 0.25, 2)
        self.nose_style, self.blush = int(rng.integers(2)), float(rng.uniform(0.0, 0.35))


def _expression(emotion: str, rng: np.random.Generator) -> dict[str, float]:
    """Sample one face's expression: the class's ranges, with per-face variation of every feature's intensity."""
    upper, mouths = _EMOTIONS[emotion]
    spec = {**_NEUTRAL, **upper, **mouths[int(rng.integers(len(mouths)))]}
    return {k: float(rng.uniform(*v)) if isinstance(v, tuple) else float(v) for k, v in spec.items()}


def _c(bgr: np.ndarray | tuple[float, ...], k: float = 1.0) -> tuple[float, float, float, float]:
    """An opaque BGRA drawing colour from a BGR colour, scaled by k (k < 1 darkens)."""
    b, g, r = np.clip(np.asarray(bgr, dtype=np.float64) * k, 0, 255)
    return (float(b), float(g), float(r), 255.0)


def _pts(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Float coordinates -> int32 polygon points with _SHIFT fractional bits, as cv2 polygon calls expect."""
    return np.round(np.stack([xs, ys], axis=-1) * (1 << _SHIFT)).astype(np.int32).reshape(-1, 1, 2)


def _fill(img: np.ndarray, xs: np.ndarray, ys: np.ndarray, color: tuple[float, ...]) -> None:
    cv2.fillPoly(img, [_pts(xs, ys)], color, _AA, _SHIFT)


def _line(img: np.ndarray, xs: np.ndarray, ys: np.ndarray, color: tuple[float, ...], width: float) -> None:
    cv2.polylines(img, [_pts(xs, ys)], False, color, max(1, round(width)), _AA, _SHIFT)


def _draw_head(img: np.ndarray, look: _Look) -> None:
    """Shoulders, neck, ears, hair and the head itself, back to front."""
    rx, ry, skin, hair = look.rx, look.ry, look.skin, look.hair
    cv2.ellipse(img, (CX, CANVAS + 10), (int(rx * 2.1), 85), 0, 0, 360, _c(look.shirt), -1, _AA)
    cv2.rectangle(img, (int(CX - 0.45 * rx), int(CY + 0.5 * ry)), (int(CX + 0.45 * rx), 262), _c(skin, 0.8), -1)
    for side in (-1, 1):
        ear = (int(CX + side * 0.97 * rx), int(look.eye_y + 0.1 * ry))
        cv2.ellipse(img, ear, (int(0.17 * rx), int(0.27 * ry)), 0, 0, 360, _c(skin, 0.92), -1, _AA)
        cv2.ellipse(img, ear, (int(0.08 * rx), int(0.16 * ry)), 0, -90, 90 if side > 0 else 270, _c(skin, 0.7), 2, _AA)
    if look.hair_style == 2:  # long hair falls behind the head and over the ears
        cv2.ellipse(img, (CX, int(CY - 0.1 * ry)), (int(1.17 * rx), int(1.0 * ry)), 0, 180, 360, _c(hair), -1, _AA)
        cv2.rectangle(
            img, (int(CX - 1.17 * rx), int(CY - 0.1 * ry)), (int(CX + 1.17 * rx), int(CY + 0.9 * ry)), _c(hair), -1
        )
    t = np.linspace(0, 2 * np.pi, 96, endpoint=False)  # an ellipse narrowed toward the chin
    _fill(img, CX + rx * np.cos(t) * (1 - look.jaw * np.clip(np.sin(t), 0, 1) ** 2), CY + ry * np.sin(t), _c(skin))
    top, line = CY - ry, CY - look.hairline * ry
    if look.hair_style in (1, 2):  # hugs the crown; the hairline dips toward the temples and may sweep to a side
        a, x = np.linspace(np.pi * 1.05, np.pi * 1.95, 40), np.linspace(0.98, -0.98, 40)
        edge = line + (CY - 0.05 * ry - line) * np.abs(x) ** 2.5 + look.sweep * ry * x
        _fill(img, np.r_[CX + 1.06 * rx * np.cos(a), CX + x * rx], np.r_[CY + 1.06 * ry * np.sin(a), edge], _c(hair))
    elif look.hair_style == 3:  # curls: a ring of circles over the crown
        for a in np.linspace(-0.95 * np.pi, -0.05 * np.pi, 9):
            centre = (int(CX + 1.0 * rx * np.cos(a)), int(line + (line - top) * 0.9 * np.sin(a)))
            cv2.circle(img, centre, int(0.3 * rx), _c(hair), -1, _AA)


def _draw_eye(img: np.ndarray, look: _Look, ex: dict[str, float], side: int) -> None:
    """An almond eye: lids shape the visible sclera; iris and pupil are clipped to it. t = -1 is the inner corner."""
    cx, cy, w, t = CX + side * look.eye_dx, look.eye_y, look.eye_w * ex["eye_scale"], np.linspace(-1, 1, 41)
    h = w * ex["eye_open"]
    xs, bulge = cx + side * t * w, (1 - t**2) ** 0.6
    lid = cy - h + h * (ex["lid_cover"] - ex["lid_tilt"] * t)  # anger lowers the inner end, sadness the outer
    upper = np.maximum(cy - h * bulge, lid)
    lower = np.maximum(cy + h * (1 - 2 * ex["lower_lid"]) * bulge, upper)  # joy pushes the lower lid up
    inside = img.copy()
    _fill(inside, np.r_[xs, xs[::-1]], np.r_[upper, lower[::-1]], _c((245, 245, 245)))
    iris = (int(cx + look.gaze[0] * w * 0.4), int(cy + look.gaze[1] * h * 0.3))
    cv2.circle(inside, iris, int(w * ex["iris"]), _c(look.iris), -1, _AA)
    cv2.circle(inside, iris, int(w * ex["iris"] * 0.5), _c((15, 15, 15)), -1, _AA)
    cv2.circle(inside, (iris[0] + int(w * 0.15), iris[1] - int(w * 0.15)), max(2, int(w * 0.1)), _c((255,) * 3), -1)
    mask = np.zeros(img.shape[:2], np.uint8)
    _fill(mask, np.r_[xs, xs[::-1]], np.r_[upper, lower[::-1]], (255,))
    img[mask > 0] = inside[mask > 0]
    _line(img, xs, upper, _c((25, 20, 20)), 0.22 * w)
    _line(img, xs, lower, _c(look.skin, 0.55), 0.08 * w)


def _draw_brow(img: np.ndarray, look: _Look, ex: dict[str, float], side: int) -> None:
    """A tapered brow; raise lifts it, tilt > 0 lifts the inner end (sad, afraid), tilt < 0 drops it (angry)."""
    u, t = look.rx, np.linspace(-1, 1, 25)
    xs = CX + side * (look.eye_dx - ex["brow_in"] * u + t * look.eye_w * 1.25)
    y = look.eye_y - (0.32 + ex["brow_raise"] + ex["brow_arch"] * (1 - t**2) - ex["brow_tilt"] * t) * u
    thick = 0.065 * u * (1.2 - 0.45 * (t + 1) / 2)  # heavier at the inner end
    _fill(img, np.r_[xs, xs[::-1]], np.r_[y - thick, (y + thick)[::-1]], _c(look.hair, 0.7))


def _draw_mouth(img: np.ndarray, look: _Look, ex: dict[str, float]) -> None:
    """Corners rise by mouth_curve (smile) or drop (frown); an opening of mouth_open splits into two lip curves."""
    u, lips, t = look.rx, _c(look.skin * np.array([0.75, 0.7, 0.95]), 0.85), np.linspace(-1, 1, 41)
    xs, base = CX + t * ex["mouth_w"] * u, look.mouth_y - ex["mouth_curve"] * u * t**2
    h, shape = ex["mouth_open"] * u, (1 - t**2) ** ex["mouth_round"]
    if h <= 0:  # closed: a lip line, thicker when pressed tight in anger, with a hint of the lower lip
        _line(img, xs, base, lips, 0.07 * u + 0.05 * u * ex["frown"])
        _line(img, xs, base, _c(look.skin, 0.35), 0.03 * u)
        inner = np.abs(t) < 0.45
        _line(img, xs[inner], base[inner] + 0.12 * u, _c(look.skin, 0.8), 0.035 * u)
        return
    upper, lower = base - ex["mouth_top"] * h * shape, base + (1 - ex["mouth_top"]) * h * shape
    _fill(img, np.r_[xs, xs[::-1]], np.r_[upper, lower[::-1]], _c((40, 30, 90)))
    if ex["teeth"] == 1:  # upper teeth: a white band under the upper lip
        _fill(
            img,
            np.r_[xs, xs[::-1]],
            np.r_[upper, np.minimum(upper + 0.3 * h + 0.02 * u, lower)[::-1]],
            _c((235, 240, 240)),
        )
    elif ex["teeth"] == 2:  # clenched teeth: two rows meeting at the bite line
        _fill(img, np.r_[xs, xs[::-1]], np.r_[upper + 0.01 * u, (lower - 0.01 * u)[::-1]], _c((230, 235, 235)))
        _line(img, xs[5:-5], base[5:-5] + (0.5 - ex["mouth_top"]) * h * shape[5:-5], _c((120, 120, 120)), 0.02 * u)
        for k in range(8, 34, 5):
            cv2.line(img, (int(xs[k]), int(upper[k] + 2)), (int(xs[k]), int(lower[k] - 2)), _c((150,) * 3), 1, _AA)
    cv2.polylines(img, [_pts(np.r_[xs, xs[::-1]], np.r_[upper, lower[::-1]])], True, lips, int(0.045 * u), _AA, _SHIFT)


def _draw_details(img: np.ndarray, look: _Look, ex: dict[str, float], rng: np.random.Generator) -> None:
    """Nose, cheeks, smile lines, frown lines and tears."""
    u, shadow, ny = look.rx, _c(look.skin, 0.6), CY + 0.3 * look.ry
    if look.nose_style == 0:  # a soft "u" with nostrils
        cv2.ellipse(img, (CX, int(ny)), (int(0.12 * u), int(0.07 * u)), 0, 20, 160, shadow, 3, _AA)
    else:  # a side-lit ridge ending in a hook
        _line(img, CX + np.array([0.03, 0.09, -0.02]) * u, ny + np.array([-0.22, 0, 0.04]) * u, shadow, 3)
    blush = img.copy()
    lift = 0.08 * u * ex["cheek"]  # joy: cheeks pushed up and rounder (shape only: blush strength is class-blind)
    for side in (-1, 1):
        centre = (int(CX + side * 0.55 * u), int(CY + 0.35 * look.ry - lift))
        cv2.ellipse(blush, centre, (int(0.18 * u), int(0.11 * u + lift / 2)), 0, 0, 360, _c((120, 110, 230)), -1, _AA)
        if ex["cheek"]:  # smile lines arching around the corners of the mouth
            x = CX + side * (ex["mouth_w"] + 0.08) * u
            cv2.ellipse(
                img,
                (int(x), int(look.mouth_y - 0.15 * u)),
                (int(0.06 * u), int(0.16 * u)),
                0,
                -60 if side > 0 else 240,
                60 if side > 0 else 120,
                shadow,
                2,
                _AA,
            )
    cv2.addWeighted(blush, look.blush, img, 1 - look.blush, 0, dst=img)
    if rng.random() < ex["frown"]:  # vertical creases between lowered brows
        for side in (-1, 1):
            _line(img, CX + side * np.array([0.07, 0.09]) * u, look.eye_y - np.array([0.35, 0.2]) * u, shadow, 2)
    if rng.random() < ex["tear"]:
        side = 1 if rng.random() < 0.5 else -1
        x, y = CX + side * (look.eye_dx + 0.3 * look.eye_w), look.eye_y + 0.25 * u
        _fill(img, x + np.array([0, -0.05, 0.05]) * u, y + np.array([-0.1, 0.0, 0.0]) * u, _c((240, 200, 150)))
        cv2.circle(img, (int(x), int(y)), int(0.05 * u), _c((240, 200, 150)), -1, _AA)


def _light(img: np.ndarray, look: _Look, rng: np.random.Generator) -> None:
    """Directional light and a darker rim, so the flat drawing reads as a rounded, lit head."""
    a, k = rng.uniform(0, 2 * np.pi), rng.uniform(0.05, 0.25)
    gain = 1 + k * ((_XX - CX) * np.cos(a) + (_YY - CY) * np.sin(a)) / look.rx
    gain *= 1 - 0.2 * np.clip(((_XX - CX) / look.rx) ** 2 + ((_YY - CY) / look.ry) ** 2, 0, 1) ** 2
    img[..., :3] = np.clip(img[..., :3] * gain[..., None], 0, 255)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Solid, gradient or blotchy noise background in random colours (float32 BGR)."""
    kind, c1 = int(rng.integers(3)), rng.uniform(10, 245, 3)
    if kind == 0:
        return np.broadcast_to(c1, (size, size, 3)).astype(np.float32)
    if kind == 1:
        a, yy, xx = rng.uniform(0, 2 * np.pi), *np.mgrid[0:size, 0:size] / size
        f = ((xx - 0.5) * np.cos(a) + (yy - 0.5) * np.sin(a) + 0.71) / 1.42
        return (c1 + (rng.uniform(10, 245, 3) - c1) * f[..., None]).astype(np.float32)
    blobs = cv2.resize(rng.normal(0, 35, (4, 4, 3)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(c1 + blobs, 0, 255).astype(np.float32)


def _place(layer: np.ndarray, look: _Look, rng: np.random.Generator, size: int) -> np.ndarray:
    """Scale, rotate and move the drawing into the frame. Anti-aliased drawing on a transparent canvas gives
    premultiplied BGRA, so resampling is exact; BORDER_REPLICATE continues the shirt past the canvas's bottom edge."""
    fill = rng.uniform(0.55, 0.85)  # head height as a fraction of the frame
    n = max(8, round(CANVAS * fill * size / (2 * look.ry)))
    small, s = cv2.resize(layer, (n, n), interpolation=cv2.INTER_AREA), n / CANVAS
    shift = rng.uniform(-1, 1, 2) * (1 - fill) * size * 0.3
    m = cv2.getRotationMatrix2D((CX * s, CY * s), float(rng.uniform(-15, 15)), 1.0)
    m[:, 2] += (size * 0.5 + shift[0] - CX * s, size * 0.47 + shift[1] - CY * s)
    return cv2.warpAffine(small, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(
        np.float32
    )


def _camera(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Global contrast and brightness, slight blur and sensor noise, as a cheap camera would add."""
    img = (img - 128) * rng.uniform(0.75, 1.2) + 128 + rng.uniform(-30, 30)
    if rng.random() < 0.6:
        img = cv2.GaussianBlur(img, (3, 3), rng.uniform(0.3, 0.8))
    img = img + rng.normal(0, rng.uniform(1, 4), img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def draw_face(emotion: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """Draw one face showing ``emotion`` (a key of FOLDERS) as a size x size uint8 BGR image."""
    if emotion not in _EMOTIONS or size < 16:
        raise ValueError(f"cannot draw {emotion!r} at {size} px: need one of {list(FOLDERS)} and size >= 16")
    look, ex, layer = _Look(rng), _expression(emotion, rng), np.zeros((CANVAS, CANVAS, 4), np.uint8)
    _draw_head(layer, look)
    for side in (-1, 1):
        _draw_eye(layer, look, ex, side)
        _draw_brow(layer, look, ex, side)
    _draw_mouth(layer, look, ex)
    _draw_details(layer, look, ex, rng)
    _light(layer, look, rng)
    face = _place(layer, look, rng, size)
    bg = _background(rng, size)
    return _camera(face[..., :3] + bg * (1 - face[..., 3:] / 255), rng)


def _image_rng(seed: int, split: str, emotion: str, i: int) -> np.random.Generator:
    """The one Generator of an image: depends only on its key, never on what was drawn before it."""
    return np.random.default_rng([seed, 1, list(SPLITS).index(split), list(FOLDERS).index(emotion), i])


def _jpeg(bgr: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG image")
    return data.tobytes()


def generate(out_dir: Path, counts: dict[str, dict[str, int]], seed: int, size: int) -> dict[str, int]:
    """Write ``counts`` faces per split and class as JPEGs in the Kaggle layout; returns the files written per split.

    counts is like {"train": {"joy": 140, ...}, "test": {...}}. Files are named img_NNNN.jpg with numbers shuffled
    over the whole dataset, so neither name nor order gives a label away. The folder appears whole or not at all.
    """
    out_dir = Path(out_dir)
    for split, per_class in counts.items():
        for name, n in per_class.items():
            if split not in SPLITS or name not in FOLDERS or int(n) < 0:
                raise ValueError(
                    f"counts[{split!r}][{name!r}] = {n!r}: need a split of {list(SPLITS)}, a class of "
                    f"{list(FOLDERS)} and a count >= 0"
                )
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ValueError(f"{out_dir} already exists and is not empty; sample data is written only to a new folder")
    jobs = [
        (split, name, i)
        for split in SPLITS
        if split in counts
        for name in FOLDERS
        for i in range(int(counts[split].get(name, 0)))
    ]
    numbers = np.random.default_rng([seed, _NAME_STREAM]).permutation(len(jobs))
    with atomic.directory(out_dir) as tmp:
        for split, name in itertools.product(counts, FOLDERS):  # every class folder, even one left empty
            (tmp / SPLITS[split] / FOLDERS[name]).mkdir(parents=True)
        for (split, name, i), number in zip(jobs, numbers, strict=True):
            jpeg = _jpeg(draw_face(name, _image_rng(seed, split, name, i), size))
            (tmp / SPLITS[split] / FOLDERS[name] / f"img_{number:04d}.jpg").write_bytes(jpeg)
    return {split: sum(int(n) for n in counts[split].values()) for split in counts}


def preview(out_png: Path, seed: int, size: int, per_class: int = 6) -> None:
    """Write a PNG contact sheet: one labelled row per emotion, showing the first ``per_class`` training faces."""
    pad, label_w = 4, 110
    sheet = np.full((len(FOLDERS) * (size + pad) + pad, label_w + per_class * (size + pad) + pad, 3), 255, np.uint8)
    for row, name in enumerate(FOLDERS):
        y = pad + row * (size + pad)
        cv2.putText(sheet, name, (pad, y + size // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, _AA)
        for i in range(per_class):
            x = label_w + i * (size + pad)
            sheet[y : y + size, x : x + size] = draw_face(name, _image_rng(seed, "train", name, i), size)
    write_png(out_png, cv2.cvtColor(sheet, cv2.COLOR_BGR2RGB))  # draw_face paints in OpenCV's BGR order
