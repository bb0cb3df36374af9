"""params.yaml -> typed, validated, immutable config objects.

Every knob lives in params.yaml; nothing here has a default, so the file is the single source of truth and a
missing, unknown or mistyped key is reported with its dotted path before any work starts.
"""

from __future__ import annotations

import dataclasses
import difflib
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
    target: int | Literal["majority"]
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
    unet: UnetConfig | None


@dataclass(frozen=True)
class PromoteConfig:
    gate: dict[str, str]
    tolerance: float
    tag_prefix: str


@dataclass(frozen=True)
class SampleDataConfig:
    seed: int
    image_size: int
    counts: dict[str, dict[str, int]]


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
    promote: PromoteConfig
    sample_data: SampleDataConfig

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
        raise ConfigError("augment.target: give 'majority' or a positive number of images per class")
    for name, model in params.train.items():
        if (model.architecture == "irv2_unet") != (model.unet is not None):
            raise ConfigError(f"train.{name}.unet: give it for architecture irv2_unet (and only then)")
    for split in params.validate.min_images_per_class:
        if split not in params.split_folders:
            raise ConfigError(f"validate.min_images_per_class.{split}: unknown split (use train, test)")


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
