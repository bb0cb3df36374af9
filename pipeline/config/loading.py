"""Reading params.yaml: YAML that rejects repeated keys, then the schema, with every problem as a ConfigError."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from pipeline.config import yamlfile
from pipeline.config.errors import ConfigError, config_error
from pipeline.config.schema import Params

Section = TypeVar("Section", bound=BaseModel)
# the checkout's own map of stages, for params given as a dict (tests, profiles) rather than a file beside one
CHECKOUT_DVC_YAML = Path(__file__).resolve().parents[2] / "dvc.yaml"


class DuplicateKey(yaml.MarkedYAMLError):
    pass


class UniqueKeyLoader(yamlfile.BoundedLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error: plain PyYAML keeps the last
    one silently, so one of two settings would be ignored without a word; and within the limits of yamlfile."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                repeated = key in seen
            except TypeError:  # an unhashable key: the base class reports it
                break
            if repeated:
                raise DuplicateKey(problem=f"duplicate key {key!r}", problem_mark=key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


@functools.cache
def stage_names(dvc_yaml: Path) -> tuple[str, ...]:
    """The stages of ``dvc_yaml`` (foreach/matrix stages by their name before the @); () when there is none."""
    try:
        spec = yamlfile.load(dvc_yaml)
    except FileNotFoundError:
        return ()
    return tuple((spec or {}).get("stages") or {})


def replace(obj: Section, values: dict, where: str) -> Section:
    """``obj`` (a config object) with the fields in ``values`` replaced, checked as strictly as params.yaml; the
    errors name the keys below ``where`` (where the values come from, e.g. a hparams.json)."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: must be a mapping of keys, got {type(values).__name__}")
    try:
        return type(obj).model_validate({**obj.model_dump(), **values})
    except ValidationError as exc:
        raise config_error(exc, where) from None


def merge(base: dict, overrides: dict) -> dict:
    """Deep-merge ``overrides`` into a copy of ``base`` (used for test and experiment profiles)."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def from_dict(raw: Any, overrides: dict | None = None, stages: tuple[str, ...] | None = None) -> Params:
    """Params from ``raw`` (the contents of params.yaml) with ``overrides`` merged over it; ``stages``: the stage
    names retrain.gpu_stages may use, by default those of this checkout's dvc.yaml."""
    if not isinstance(raw, dict):
        raise ConfigError(f"must be a mapping of keys, got {type(raw).__name__}")
    stages = stage_names(CHECKOUT_DVC_YAML) if stages is None else stages
    try:
        return Params.model_validate(merge(raw, overrides or {}), context={"stages": stages})
    except ValidationError as exc:
        raise config_error(exc) from None


def load(path: str | Path = "params.yaml") -> Params:
    """Params from the file ``path``; retrain.gpu_stages is checked against the dvc.yaml beside it."""
    path = Path(path)
    try:
        raw = yamlfile.load(path, UniqueKeyLoader)
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found (run from the repository root)") from None
    except DuplicateKey as exc:
        raise ConfigError(f"{path} line {exc.problem_mark.line + 1}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    beside = path.parent / "dvc.yaml"
    try:
        return from_dict(raw, stages=stage_names(beside.resolve()) or None)
    except ConfigError as exc:
        raise ConfigError("\n".join(f"{path}: {line}" for line in str(exc).splitlines())) from None
