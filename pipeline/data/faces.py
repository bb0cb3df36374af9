"""Face detection with the Haar cascade that ships inside opencv-python (4.x), and face-centred crops."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

CASCADE = "haarcascade_frontalface_default.xml"


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]


class FaceDetector:
    def __init__(self, min_size_fraction: float = 0.1, min_neighbors: int = 5):
        path = Path(cv2.data.haarcascades) / CASCADE
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise RuntimeError(f"OpenCV face cascade {path} could not be loaded (is opencv-python 4.x installed?)")
        self.min_size_fraction = min_size_fraction
        self.min_neighbors = min_neighbors

    def detect(self, rgb: np.ndarray) -> list[Box]:
        """Faces in an RGB image, largest first."""
        gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        side = int(min(gray.shape) * self.min_size_fraction)
        found = self._cascade.detectMultiScale(
            gray, scaleFactor=1.1, minNeighbors=self.min_neighbors, minSize=(side, side)
        )
        boxes = [Box(int(x), int(y), int(w), int(h)) for x, y, w, h in found]
        return sorted(boxes, key=lambda b: b.w * b.h, reverse=True)


def crop(rgb: np.ndarray, box: Box, margin: float) -> np.ndarray:
    """A square crop around ``box`` grown by ``margin`` of its size on each side, clipped to the image."""
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    half = max(box.w, box.h) * (0.5 + margin)
    h, w = rgb.shape[:2]
    x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
    x1, y1 = min(w, int(cx + half)), min(h, int(cy + half))
    return rgb[y0:y1, x0:x1]


def resize(rgb: np.ndarray, size: int) -> np.ndarray:
    interpolation = cv2.INTER_AREA if min(rgb.shape[:2]) > size else cv2.INTER_LINEAR
    return cv2.resize(rgb, (size, size), interpolation=interpolation)


def prepare(
    rgb: np.ndarray, size: int, detector: FaceDetector | None, margin: float = 0.2
) -> tuple[np.ndarray, bool | None]:
    """The model's view of an image: the largest face cropped (when a detector is given), resized to ``size``.

    Returns the image and whether a face was found (None without a detector); with no face the whole image is used.
    """
    if detector is not None:
        boxes = detector.detect(rgb)
        if boxes:
            return resize(crop(rgb, boxes[0], margin), size), True
        return resize(rgb, size), False
    return resize(rgb, size), None
