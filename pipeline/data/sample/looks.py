"""Who the sample faces show and how they feel: identity palettes and proportions (one distribution for every
emotion), and each emotion's ranges of brow, eyelid and mouth geometry."""

from __future__ import annotations

import numpy as np

# Faces are drawn upright on a fixed canvas, so feature code works in fixed pixel units; _place() then scales, rotates
# and moves the drawing into the output frame. CX, CY is the head centre on that canvas.
CANVAS, CX, CY = 320, 160, 140

# Palettes (BGR). Skin is a light-to-dark continuum sampled between anchors.
SKIN = np.array(
    [[215, 228, 250], [180, 205, 240], [140, 180, 225], [105, 150, 200], [75, 115, 165], [55, 85, 125], [40, 60, 90]],
    dtype=np.float64,
)
HAIR = [(20, 22, 25), (30, 45, 70), (40, 70, 110), (90, 160, 210), (40, 70, 150), (160, 160, 165)]
IRIS = [(30, 60, 100), (20, 35, 55), (160, 120, 70), (90, 130, 80), (50, 100, 130)]

# Expression parameters, as (low, high) ranges or fixed values; lengths in units of the head's half-width, tear and
# frown are probabilities. A face starts from NEUTRAL, takes its emotion's upper-face spec, then one mouth variant.
Spec = dict[str, float | tuple[float, float]]
NEUTRAL: Spec = {
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
EMOTIONS: dict[str, tuple[Spec, list[Spec]]] = {
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


class Look:
    """Who is pictured: drawn from one distribution for every emotion, so identity never hints at the label."""

    def __init__(self, rng: np.random.Generator) -> None:
        k, anchors = rng.uniform(0, len(SKIN) - 1), np.arange(len(SKIN))
        self.skin = np.clip([np.interp(k, anchors, SKIN[:, ch]) for ch in range(3)] + rng.normal(0, 5, 3), 0, 255)
        self.hair = np.clip(np.array(HAIR[rng.integers(len(HAIR))]) + rng.normal(0, 8, 3), 0, 255)
        self.iris = np.array(IRIS[rng.integers(len(IRIS))], dtype=np.float64)
        self.shirt = rng.uniform(30, 230, 3)
        self.hair_style = int(rng.integers(4))  # 0 none, 1 cap, 2 long, 3 curly
        self.hairline, self.sweep = rng.uniform(0.55, 0.72), rng.uniform(-0.12, 0.12)
        self.rx, self.ry, self.jaw = rng.uniform(62, 72), rng.uniform(80, 90), rng.uniform(0.05, 0.2)
        self.eye_dx, self.eye_w = self.rx * rng.uniform(0.36, 0.42), self.rx * rng.uniform(0.17, 0.2)
        self.eye_y, self.mouth_y = CY + self.ry * rng.uniform(-0.02, 0.06), CY + self.ry * rng.uniform(0.5, 0.58)
        self.gaze = rng.uniform(-0.25, 0.25, 2)
        self.nose_style, self.blush = int(rng.integers(2)), float(rng.uniform(0.0, 0.35))


def expression(emotion: str, rng: np.random.Generator) -> dict[str, float]:
    """Sample one face's expression: the class's ranges, with per-face variation of every feature's intensity."""
    upper, mouths = EMOTIONS[emotion]
    spec = {**NEUTRAL, **upper, **mouths[int(rng.integers(len(mouths)))]}
    return {k: float(rng.uniform(*v)) if isinstance(v, tuple) else float(v) for k, v in spec.items()}
