"""Image augmentation for class balancing: one affine warp plus brightness and contrast, seeded per image."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.config import AugmentConfig


@dataclass(frozen=True)
class Transform:
    angle: float
    scale: float
    shift_x: float
    shift_y: float
    flip: bool
    brightness: float
    contrast: float


def sample_transform(cfg: AugmentConfig, rng: np.random.Generator) -> Transform:
    return Transform(
        angle=float(rng.uniform(-cfg.rotation, cfg.rotation)),
        scale=float(rng.uniform(1 - cfg.zoom, 1 + cfg.zoom)),
        shift_x=float(rng.uniform(-cfg.shift, cfg.shift)),
        shift_y=float(rng.uniform(-cfg.shift, cfg.shift)),
        flip=bool(cfg.horizontal_flip and rng.random() < 0.5),
        brightness=float(rng.uniform(-cfg.brightness, cfg.brightness)),
        contrast=float(rng.uniform(1 - cfg.contrast, 1 + cfg.contrast)),
    )


def apply(image: np.ndarray, t: Transform) -> np.ndarray:
    """Apply ``t`` to an RGB uint8 image: rotation, zoom, shift and flip in a single warp (one resampling)."""
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), t.angle, t.scale)
    matrix[:, 2] += (t.shift_x * w, t.shift_y * h)
    if t.flip:  # mirror about the vertical centre line, folded into the same matrix
        matrix = np.array([[-1, 0, w - 1], [0, 1, 0]], np.float64) @ np.vstack([matrix, [0, 0, 1]])
    out = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    # contrast about mid-grey, then brightness as a fraction of full scale, in one saturating pass
    alpha = t.contrast
    beta = 127.5 * (1 - t.contrast) + 255 * t.brightness
    return cv2.convertScaleAbs(out, alpha=alpha, beta=beta)


def augment(image: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    return apply(image, sample_transform(cfg, rng))
