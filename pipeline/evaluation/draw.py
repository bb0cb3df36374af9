"""Pictures drawn for people to look at: labelled face boxes, and heat maps laid over an image."""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

GREEN = (0, 255, 0)  # the same in RGB and BGR order


def overlay(rgb: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """``heatmap`` (values in [0, 1]) in the jet colour map, blended over an RGB image of the same size."""
    heat = cv2.applyColorMap(np.uint8(np.round(255 * heatmap)), cv2.COLORMAP_JET)
    return cv2.addWeighted(rgb, 1 - alpha, cv2.cvtColor(heat, cv2.COLOR_BGR2RGB), alpha, 0)


def heat_strip(rgb: np.ndarray, heatmaps: Iterable[np.ndarray]) -> np.ndarray:
    """The image, then each heat map laid over it, side by side."""
    return np.concatenate([rgb, *(overlay(rgb, m) for m in heatmaps)], axis=1)


def labelled_boxes(rgb: np.ndarray, boxes: Iterable[tuple[int, int, int, int, str]], scale: float = 1.0) -> np.ndarray:
    """A copy of ``rgb`` with each (x, y, w, h, text) drawn as a box and its caption. Boxes are in the pixels of the
    picture ``rgb`` was scaled from by ``scale``: a large picture is annotated on a smaller display copy."""
    out = rgb.copy()
    thickness = max(1, round(max(out.shape[:2]) / 200))
    for *xywh, text in boxes:
        x, y, w, h = (round(v * scale) for v in xywh)
        cv2.rectangle(out, (x, y), (x + w - 1, y + h - 1), GREEN, thickness)
        # a box at the picture's top edge gets its caption inside, below the edge
        origin = (x + 2, y - 4 if y > 14 else y + 14)
        cv2.putText(out, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thickness, GREEN, thickness, cv2.LINE_AA)
    return out
