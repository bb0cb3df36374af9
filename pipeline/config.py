"""params.yaml -> typed, validated, immutable config objects.

Every knob lives in params.yaml; nothing here has a default, so the file is the single source of truth and a
missing, unknown or mistyped key is reported with its dotted path before any work starts.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """params.yaml does not match the schema below."""


@dataclass(frozen=True)
class ValidateConfig:
    min_width: int
    min_height: int
    allowed_channels: list[int]
    allowed_extensions: list[str]
    min_images_per_class: dict[str, int]
    near_duplicate_max_distance: int


@dataclass(frozen=True)
class AugmentConfig:
    val_fraction: float
    group_regex: str | None
    target: int | Literal["majority", "none"]
    cap_majority: int | None
    face_crop: bool
    face_margin: float
    rotation: float
    shift: float
    zoom: float
    horizontal_flip: bool
    brightness: float
    contrast: float


@dataclass(frozen=True)
class UnetConfig:
    decoder_filters: list[int]
    reconstruction_weight: float


@dataclass(frozen=True)
class TrainConfig:
    architecture: Literal["irv2", "irv2_unet"]
    weights: str | None
    head_units: int
    dropout: float
    optimizer: Literal["adam", "sgd"]
    learning_rate: float
    momentum: float
    batch_size: int
    epochs: int
    finetune_epochs: int
    finetune_learning_rate: float
    unfreeze_top_layers: int
    label_smoothing: float
    class_weight: Literal["balanced", "none"]
    early_stopping_patience: int
    reduce_lr_patience: int
    mixed_precision: bool
    xla: bool
    run_eagerly: bool
    unet: UnetConfig | None


@dataclass(frozen=True)
class RetrainConfig:
    schedule: str
    gpu_stages: list[str]
    retries: int
    retry_delay_minutes: float
    timeout_hours: dict[Literal["cpu", "gpu"], float]


@dataclass(frozen=True)
class PromoteConfig:
    stage: str  # the registry stage a promotion assigns (GTO), e.g. prod
    gate: dict[str, float]  # Test-split metric of metrics/evaluate.json -> absolute floor
    tolerance: float  # a challenger may trail the champions, re-scored on the same Test split, by at most this
    per_class_tolerance: float | None  # no class's F1 may fall by more than this; None: not checked


@dataclass(frozen=True)
class ReferenceFigures:
    """Published figures of a study, shown beside ours in the evaluation report; null where it gives none."""

    accuracy: float | None
    macro_f1: float | None
    per_class_f1: dict[str, float]


@dataclass(frozen=True)
class EvaluateConfig:
    batch_size: int
    gradcam_per_class: int
    gradcam_min_map_size: int
    reference: dict[str, ReferenceFigures]


@dataclass(frozen=True)
class PredictConfig:
    batch_size: int
    video_frame_step: int
    max_detect_side: int


@dataclass(frozen=True)
class SampleDataConfig:
    seed: int
    image_size: int
    counts: dict[str, dict[str, int]]


@dataclass(frozen=True)
class Range:
    """A numeric dimension of the search space: uniform between low and high, or log-uniform."""

    low: float
    high: float
    log: bool


@dataclass(frozen=True)
class Choice:
    """A categorical dimension of the search space."""

    choice: list[int | float | str | bool]


@dataclass(frozen=True)
class HyperbandConfig:
    max_epochs: int
    factor: int
    iterations: int


@dataclass(frozen=True)
class BayesianConfig:
    initial_points: int


@dataclass(frozen=True)
class EvolutionaryConfig:
    population: int
    crossover: float
    mutation: float
    mutation_sigma: float
    tournament: int


@dataclass(frozen=True)
class TuneConfig:
    algorithm: Literal["hyperband", "random", "bayesian", "evolutionary"]
    max_trials: int
    epochs_per_trial: int
    time_cap_s: int | None
    hyperband: HyperbandConfig
    bayesian: BayesianConfig
    evolutionary: EvolutionaryConfig
    space: dict[str, Range | Choice]


# TrainConfig fields a search may not set: they pick the model or are set by the search budget itself
UNTUNABLE = ("architecture", "weights", "unet", "epochs", "finetune_epochs")


@dataclass(frozen=True)
class Params:
    classes: list[str]
    class_aliases: dict[str, str]
    split_folders: dict[str, str]
    image_size: int
    seed: int
    validate: ValidateConfig
    augment: AugmentConfig
    train: dict[str, TrainConfig]
    tune: TuneConfig
    retrain: RetrainConfig
    promote: PromoteConfig
    sample_data: SampleDataConfig
    evaluate: EvaluateConfig
    predict: PredictConfig

    def class_index(self, name: str) -> int:
        return self.classes.index(name)


def _describe(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _build(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        hints = typing.get_type_hints(tp)
        names = [f.name for f in dataclasses.fields(tp)]
        unknown = [k for k in value if k not in names]
        if unknown:
            key = unknown[0]
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (known keys: {', '.join(names)})"
            raise ConfigError(f"{where}.{key}: unknown key{hint}".lstrip("."))
        missing = [n for n in names if n not in value]
        if missing:
            raise ConfigError(f"{where}.{missing[0]}: missing key".lstrip("."))
        return tp(**{n: _build(hints[n], value[n], f"{where}.{n}" if where else n) for n in names})
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{where}: {value!r} is not one of {list(typing.get_args(tp))}")
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arg in typing.get_args(tp):
            if arg is type(None):
                if value is None:
                    return None
                continue
            try:
                return _build(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: {value!r} does not match {_describe(tp)}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        (item,) = typing.get_args(tp)
        return [_build(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        key_tp, val_tp = typing.get_args(tp)
        return {_build(key_tp, k, where): _build(val_tp, v, f"{where}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp in (int, str, bool):
        if isinstance(value, bool) and tp is not bool or not isinstance(value, tp):
            raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
        return value
    if tp is Any:
        return value
    raise TypeError(f"unsupported config type {tp!r} at {where}")


def _check(params: Params) -> None:
    if len(set(params.classes)) != len(params.classes):
        raise ConfigError("classes: names must be unique")
    for alias, target in params.class_aliases.items():
        if target not in params.classes:
            raise ConfigError(f"class_aliases.{alias}: '{target}' is not one of classes {params.classes}")
    if set(params.split_folders) != {"train", "test"}:
        raise ConfigError("split_folders: needs exactly the keys 'train' and 'test'")
    if params.image_size < 75:
        raise ConfigError(f"image_size: {params.image_size} is below 75, the smallest InceptionResNetV2 input")
    if not 0 <= params.augment.val_fraction < 1:
        raise ConfigError(f"augment.val_fraction: {params.augment.val_fraction} is not in [0, 1)")
    if isinstance(params.augment.target, int) and params.augment.target < 1:
        raise ConfigError("augment.target: give 'majority', 'none' or a positive number of images per class")
    for name, model in params.train.items():
        if (model.architecture == "irv2_unet") != (model.unet is not None):
            raise ConfigError(f"train.{name}.unet: give it for architecture irv2_unet (and only then)")
    for split in params.validate.min_images_per_class:
        if split not in params.split_folders:
            raise ConfigError(f"validate.min_images_per_class.{split}: unknown split (use train, test)")
    _check_tune(params.tune)
    _check_evaluate(params)
    _check_promote(params.promote)


GATED_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1")


def _check_promote(promote: PromoteConfig) -> None:
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", promote.stage):
        raise ConfigError(f"promote.stage: {promote.stage!r} is not a GTO stage name (lower case, e.g. prod)")
    if not promote.gate:
        raise ConfigError(f"promote.gate: name at least one Test metric with its floor (one of {GATED_METRICS})")
    for metric, floor in promote.gate.items():
        if metric not in GATED_METRICS:
            raise ConfigError(f"promote.gate.{metric}: not a gated Test metric (one of {', '.join(GATED_METRICS)})")
        if not 0 <= floor <= 1:
            raise ConfigError(f"promote.gate.{metric}: floor {floor} is outside [0, 1]")
    for key in ("tolerance", "per_class_tolerance"):
        value = getattr(promote, key)
        if value is not None and not 0 <= value <= 1:
            raise ConfigError(f"promote.{key}: {value} is outside [0, 1]")


def _check_evaluate(params: Params) -> None:
    for name, figures in params.evaluate.reference.items():
        for label in figures.per_class_f1:
            if label not in params.classes:
                where = f"evaluate.reference.{name}.per_class_f1.{label}"
                raise ConfigError(f"{where}: not one of classes {params.classes}")
    counts = {
        "evaluate.batch_size": params.evaluate.batch_size,
        "evaluate.gradcam_per_class": params.evaluate.gradcam_per_class,
        "evaluate.gradcam_min_map_size": params.evaluate.gradcam_min_map_size,
        "predict.batch_size": params.predict.batch_size,
        "predict.video_frame_step": params.predict.video_frame_step,
    }
    for key, value in counts.items():
        if value < 1:
            raise ConfigError(f"{key}: {value} is below 1")
    if params.predict.max_detect_side < params.image_size:
        raise ConfigError(f"predict.max_detect_side: {params.predict.max_detect_side} is below image_size")


def _check_tune(tune: TuneConfig) -> None:
    budget = {
        "max_trials": tune.max_trials,
        "epochs_per_trial": tune.epochs_per_trial,
        "hyperband.max_epochs": tune.hyperband.max_epochs,
        "hyperband.iterations": tune.hyperband.iterations,
        "evolutionary.tournament": tune.evolutionary.tournament,
    }
    for key, value in budget.items():
        if value < 1:
            raise ConfigError(f"tune.{key}: {value} is below 1")
    if tune.hyperband.factor < 2:
        raise ConfigError(f"tune.hyperband.factor: {tune.hyperband.factor} is below 2")
    if tune.evolutionary.population < 2:
        raise ConfigError(f"tune.evolutionary.population: {tune.evolutionary.population} is below 2")
    for key in ("crossover", "mutation"):
        if not 0 <= getattr(tune.evolutionary, key) <= 1:
            raise ConfigError(f"tune.evolutionary.{key}: a probability, give a number in [0, 1]")
    hints = typing.get_type_hints(TrainConfig)
    for name, dim in tune.space.items():
        where = f"tune.space.{name}"
        if name not in hints or name in UNTUNABLE:
            tunable = [n for n in hints if n not in UNTUNABLE]
            raise ConfigError(f"{where}: not a tunable field of train.<model> (one of {', '.join(tunable)})")
        if isinstance(dim, Range):
            if hints[name] not in (int, float):
                raise ConfigError(f"{where}: a range needs a numeric field; give a choice instead")
            if not dim.low < dim.high or dim.log and dim.low <= 0:
                raise ConfigError(f"{where}: needs low < high (and low > 0 on a log scale)")
        elif not dim.choice:
            raise ConfigError(f"{where}.choice: give at least one value")
        else:
            for i, value in enumerate(dim.choice):
                _build(hints[name], value, f"{where}.choice[{i}]")


def replace(obj: Any, values: dict, where: str) -> Any:
    """``obj`` (a config object) with the fields in ``values`` replaced, checked as strictly as params.yaml."""
    return _build(type(obj), {**dataclasses.asdict(obj), **values}, where)


def merge(base: dict, overrides: dict) -> dict:
    """Deep-merge ``overrides`` into a copy of ``base`` (used for test and experiment profiles)."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def from_dict(raw: dict, overrides: dict | None = None) -> Params:
    params = _build(Params, merge(raw, overrides or {}), "")
    _check(params)
    return params


def load(path: str | Path = "params.yaml", overrides: dict | None = None) -> Params:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found (run from the repository root)") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    try:
        return from_dict(raw or {}, overrides)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def as_dict(cfg: Any) -> dict[str, Any]:
    """A config object as plain data (for hashing a stage's inputs)."""
    return dataclasses.asdict(cfg)
