"""Finding the same picture twice: across Train and Test (a leak), or inside one split (one group for the split).

A copy is rarely byte-identical: it is mirrored, brightened, re-encoded or trimmed at the border. Each image gets a
signature over ten views of itself (as stored and mirrored, each whole and centre-cropped to 95 ... 80 %); two images
are one picture when some view of one matches the other on all four measures at once:
- a 64-bit DCT perceptual hash (the structure at low frequencies; survives brightness, contrast and re-encoding),
- a 64-bit difference hash (the direction of the gradients, a second opinion that fails differently),
- the correlation of 16 x 16 colour thumbnails (L, a, b, each normalised), which tells apart two different children
  photographed alike: faces in one pose against one background share structure but rarely their colours;
- the correlation of the Laplacian of 24 x 24 grey thumbnails: the fine structure (eyes, brows, mouth), which two
  different faces of one layout and palette do not share, while every edit above keeps it.
Requiring all four keeps distinct pictures apart, while each edit above leaves all four close. Calibrated on 835
images drawn by the sample generator (the study's 760 + 75): the first three measures alone flagged 5 pairs of
distinct faces at the defaults (hash distance 8, colour correlation 0.85; the closest at colour correlation 0.95),
whose fine-structure correlation was at most 0.55, while mirrored, 30 % brighter or darker, 30 % more or less
contrast, 3-10 px border crops, crop plus mirror plus 20 % brightness, and JPEG-60 copies of 125 of them kept at
least 0.62 (default 0.6).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.config import ValidateConfig
from pipeline.data.images import phash_bits

SCALES = (1.0, 0.95, 0.9, 0.85, 0.8)
VIEWS = [(mirrored, scale) for mirrored in (False, True) for scale in SCALES]  # view 0: the image as stored
THUMB = 16
FINE = 24  # the fine-structure thumbnail: eyes and mouth span a few of its pixels
CHUNK = 64  # rows of the distance matrices computed at once: memory stays flat on large datasets


@dataclass(frozen=True)
class Rule:
    """How close two images must be to count as one picture (params.yaml: validate.near_duplicate_*)."""

    max_distance: int  # perceptual-hash bits that may differ (the difference hash may differ in twice as many)
    min_correlation: float  # of the colour thumbnails
    min_structure: float  # correlation of the fine structure (the Laplacian of grey thumbnails)


def rule(validate: ValidateConfig) -> Rule:
    return Rule(
        validate.near_duplicate_max_distance,
        validate.near_duplicate_min_correlation,
        validate.near_duplicate_min_structure,
    )


@dataclass(frozen=True)
class Signature:
    phash: np.ndarray  # views x 64 bool
    dhash: np.ndarray  # views x 64 bool
    colour: np.ndarray  # views x THUMB*THUMB x 3 float32, each channel of zero mean and unit norm
    structure: np.ndarray  # views x FINE*FINE float32, of zero mean and unit norm


@dataclass(frozen=True)
class Match:
    a: int  # index into the first list
    b: int  # index into the second
    view: int  # which view of b matched a as stored (or of a matched b)
    distance: int  # perceptual-hash bits that differ
    correlation: float
    structure: float

    def describe(self) -> str:
        mirrored, scale = VIEWS[self.view]
        kind = "mirrored copy" if mirrored else "copy"
        if scale < 1:
            kind += f", one of them cropped to about {round(scale * 100)} %"
        return (
            f"{kind}; hash distance {self.distance}, colour correlation {self.correlation:.2f}, "
            f"structure correlation {self.structure:.2f}"
        )


def _centre(rgb: np.ndarray, scale: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    ch, cw = max(1, round(h * scale)), max(1, round(w * scale))
    y, x = (h - ch) // 2, (w - cw) // 2
    return rgb[y : y + ch, x : x + cw]


def _unit(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=0)
    return x / (np.linalg.norm(x, axis=0) + 1e-3)  # a flat channel (a grey image's a and b) correlates as zero


def _view(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    phash = phash_bits(gray)
    small = cv2.resize(gray, (9, 8), interpolation=cv2.INTER_AREA)
    dhash = (small[:, 1:] > small[:, :-1]).flatten()
    thumb = cv2.resize(rgb, (THUMB, THUMB), interpolation=cv2.INTER_AREA)
    lab = _unit(cv2.cvtColor(thumb, cv2.COLOR_RGB2LAB).astype(np.float32).reshape(-1, 3))
    fine = cv2.Laplacian(cv2.resize(gray, (FINE, FINE), interpolation=cv2.INTER_AREA), cv2.CV_32F)
    return phash, dhash, lab, _unit(fine.reshape(-1))


def signature(rgb: np.ndarray) -> Signature:
    """The signature of an 8-bit RGB image (read upright)."""
    views = [_view(np.ascontiguousarray(_centre(rgb[:, ::-1] if m else rgb, s))) for m, s in VIEWS]
    return Signature(*(np.stack(part) for part in zip(*views, strict=True)))


def _best(a: list[Signature], b: list[Signature], rule: Rule):
    """For each pair (a as stored, any view of b): whether some view matches, and the closest view's figures."""
    bp, bd, bc, bs = (np.stack([getattr(s, f) for s in b]) for f in ("phash", "dhash", "colour", "structure"))
    flat_b, flat_s = bc.reshape(len(b) * len(VIEWS), -1), bs.reshape(len(b) * len(VIEWS), -1)
    for start in range(0, len(a), CHUNK):
        part = a[start : start + CHUNK]
        ap = np.stack([s.phash[0] for s in part])
        ad = np.stack([s.dhash[0] for s in part])
        ac = np.stack([s.colour[0] for s in part])
        fine = np.stack([s.structure[0] for s in part])
        dp = (ap[:, None, None] != bp[None]).sum(-1)  # len(part) x len(b) x views
        dd = (ad[:, None, None] != bd[None]).sum(-1)
        # the mean over L, a, b of each channel's correlation is one dot product of the flattened thumbnails / 3
        nc = (ac.reshape(len(part), -1) @ flat_b.T).reshape(len(part), len(b), -1) / 3
        ns = (fine @ flat_s.T).reshape(len(part), len(b), -1)
        ok = (dp <= rule.max_distance) & (dd <= 2 * rule.max_distance) & (nc >= rule.min_correlation)
        ok &= ns >= rule.min_structure
        # the matching view with the fewest differing hash bits (any view, when none matches)
        view = np.where(ok, dp, 999).argmin(-1)
        yield (
            start,
            ok.any(-1),
            view,
            np.take_along_axis(dp, view[..., None], -1)[..., 0],
            np.take_along_axis(nc, view[..., None], -1)[..., 0],
            np.take_along_axis(ns, view[..., None], -1)[..., 0],
        )


def matches(a: list[Signature], b: list[Signature], rule: Rule, same: bool = False) -> list[Match]:
    """Every pair (i of ``a``, j of ``b``) that is one picture, either way round. ``same``: ``a`` and ``b`` are one
    list, and each pair is reported once (i < j)."""
    if not a or not b:
        return []
    found: dict[tuple[int, int], Match] = {}
    for flipped, (first, second) in enumerate(((a, b), (b, a))):
        for start, hit, view, distance, correlation, structure in _best(first, second, rule):
            for i, j in zip(*np.nonzero(hit), strict=True):
                x, y = (start + i, j) if not flipped else (j, start + i)
                if same and x >= y:
                    continue
                match = Match(
                    int(x),
                    int(y),
                    int(view[i, j]),
                    int(distance[i, j]),
                    float(correlation[i, j]),
                    float(structure[i, j]),
                )
                if (x, y) not in found or match.distance < found[(x, y)].distance:
                    found[(x, y)] = match
    return sorted(found.values(), key=lambda m: (m.a, m.b))
