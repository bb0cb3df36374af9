"""The search space, described once from params (tune.space) and read by both searches.

Keras Tuner gets it as ``kt.HyperParameters``; the genetic algorithm as a point of the unit cube, one gene in [0, 1]
per dimension, which ``decode`` maps onto the same ranges and choices. Either way a decoded point is a dict of
train.<model> fields, ready for ``config.replace``.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.config import Choice, Range, TrainConfig

if TYPE_CHECKING:  # Keras Tuner imports Keras and TensorFlow: only a Keras Tuner search needs it
    import keras_tuner as kt


@dataclass(frozen=True)
class Dimension:
    name: str  # a TrainConfig field
    kind: typing.Literal["int", "float", "choice"]
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple = ()


def dimensions(space: dict[str, Range | Choice]) -> list[Dimension]:
    """The space in params order; numeric ranges take the type of the field they set."""
    hints = typing.get_type_hints(TrainConfig)
    dims = []
    for name, dim in space.items():
        if isinstance(dim, Range):
            kind = "int" if hints[name] is int else "float"
            dims.append(Dimension(name, kind, float(dim.low), float(dim.high), dim.log))
        else:
            # yaml reads 0 in [0, 0.1] as an int; the field's own type keeps Keras Tuner's Choice homogeneous
            cast = hints[name] if hints[name] in (int, float) else (lambda v: v)
            dims.append(Dimension(name, "choice", choices=tuple(cast(v) for v in dim.choice)))
    return dims


def baseline(dims: list[Dimension], cfg: TrainConfig) -> dict[str, Any]:
    """The hand-set values of ``cfg``, each brought into its dimension (clamped, or the first choice)."""
    out = {}
    for d in dims:
        value = getattr(cfg, d.name)
        if d.kind == "choice":
            out[d.name] = value if value in d.choices else d.choices[0]
        else:
            value = min(max(value, d.low), d.high)
            out[d.name] = int(round(value)) if d.kind == "int" else float(value)
    return out


def hyperparameters(dims: list[Dimension], defaults: dict[str, Any]) -> kt.HyperParameters:
    import keras_tuner as kt

    hp = kt.HyperParameters()
    for d in dims:
        sampling = "log" if d.log else "linear"
        if d.kind == "float":
            hp.Float(d.name, d.low, d.high, sampling=sampling, default=defaults[d.name])
        elif d.kind == "int":
            hp.Int(d.name, int(d.low), int(d.high), sampling=sampling, default=defaults[d.name])
        else:
            hp.Choice(d.name, list(d.choices), default=defaults[d.name])
    return hp


def from_values(dims: list[Dimension], values: dict[str, Any]) -> dict[str, Any]:
    """The train.<model> overrides in a Keras Tuner trial's values (which also hold Hyperband's own "tuner/" keys)."""
    return {d.name: _plain(values[d.name]) for d in dims}


def decode(dims: list[Dimension], genes: list[float]) -> dict[str, Any]:
    """The train.<model> overrides at a point of the unit cube (genes outside [0, 1] are clipped)."""
    if len(genes) != len(dims):
        raise ValueError(f"{len(genes)} genes for {len(dims)} dimensions")
    out = {}
    for d, g in zip(dims, genes, strict=True):
        g = min(max(float(g), 0.0), 1.0)
        if d.kind == "choice":
            out[d.name] = d.choices[min(int(g * len(d.choices)), len(d.choices) - 1)]
            continue
        value = d.low * (d.high / d.low) ** g if d.log else d.low + g * (d.high - d.low)
        # six significant digits: readable values, and genes that differ by rounding noise are one configuration
        out[d.name] = int(round(value)) if d.kind == "int" else float(f"{value:.6g}")
    return out


def encode(dims: list[Dimension], values: dict[str, Any]) -> list[float]:
    """The point of the unit cube that decodes to ``values`` (the middle of a choice's interval)."""
    genes = []
    for d in dims:
        v = values[d.name]
        if d.kind == "choice":
            genes.append((d.choices.index(v) + 0.5) / len(d.choices))
        elif d.log:
            genes.append(math.log(v / d.low) / math.log(d.high / d.low))
        else:
            genes.append((v - d.low) / (d.high - d.low))
    return [min(max(g, 0.0), 1.0) for g in genes]


def _plain(value: Any) -> Any:
    """Python scalars for JSON (values can come back from Keras Tuner's protobufs as numpy types)."""
    return value.item() if hasattr(value, "item") else value
