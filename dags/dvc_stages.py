"""The stages of a dvc.yaml as the retraining DAG needs them: DVC's own names, which stages each one waits for.

A plain YAML read with no DVC import, because the DAG processor re-parses DAG files every 30 s or so and must stay
light. It reads only what this project's dvc.yaml uses: plain stages and ``matrix`` stages of string values,
interpolated with ``${item.<axis>}``. Anything else (``foreach``, ``vars``, ``wdir``, other interpolations ...) could
change names or paths in ways this reader would get wrong, so it is refused by name instead; tests/dags check names
and edges against DVC's own graph so the two cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import itertools
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# the bounded YAML reader of params.yaml (the DAG imports pipeline.config anyway): a dvc.yaml of aliases that expand
# to a billion values is refused at parse, not walked
from pipeline.config import yamlfile

# top-level sections that do not change the stages (plots, metrics and artifacts only name files for DVC's commands)
_TOP_LEVEL = {"stages", "plots", "metrics", "artifacts"}
_STAGE_KEYS = {"desc", "cmd", "matrix", "deps", "params", "outs", "metrics", "plots"}
_OUTPUTS = ("outs", "metrics", "plots")
_INTERPOLATION = re.compile(r"\$\{(.*?)\}")


@dataclass(frozen=True)
class Stage:
    name: str  # DVC's address, e.g. "train@irv2": what `dvc repro` takes
    group: str  # the dvc.yaml entry it comes from, e.g. "train"
    key: str | None  # its matrix key, e.g. "irv2"; None for a plain stage
    desc: str
    cmd: str
    deps: tuple[str, ...]
    outs: tuple[str, ...]  # outs, metrics and plots: everything another stage may depend on
    uncached: tuple[str, ...] = ()  # those of them with `cache: false` (kept in git, not in the DVC cache)
    upstream: tuple[str, ...] = ()  # names of the stages whose outputs this one reads


def read(workspace: str | Path) -> list[Stage]:
    """Every stage of ``workspace``/dvc.yaml in file order, each with the stages it depends on."""
    spec = yamlfile.load(Path(workspace) / "dvc.yaml") or {}  # size- and alias-bounded, as params.yaml
    _refuse("its top level", set(spec) - _TOP_LEVEL)
    stages = []
    for group, body in (spec.get("stages") or {}).items():
        _refuse(f"stage '{group}'", set(body) - _STAGE_KEYS)
        if not isinstance(body.get("cmd", ""), str):
            _refuse(f"stage '{group}'", {"cmd as a list"})
        if "matrix" not in body:
            stages.append(_stage(group, group, None, body, {}))
            continue
        axes = body["matrix"]
        if not all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in axes.values()):
            _refuse(f"stage '{group}'", {"matrix values other than lists of strings"})
        for values in itertools.product(*axes.values()):
            key = "-".join(values)  # DVC's naming: train@irv2, or fit@small-adam for two axes
            stages.append(_stage(f"{group}@{key}", group, key, body, dict(zip(axes, values, strict=True))))
    return _link(stages)


def _refuse(where: str, features: set) -> None:
    if features:
        raise ValueError(
            f"dvc.yaml: {where} uses {', '.join(sorted(map(str, features)))}, which dags/dvc_stages.py does not "
            "support; the DAG would be wired wrongly, so extend the reader (and tests/dags/test_dvc_stages.py) first"
        )


def _stage(name: str, group: str, key: str | None, body: dict, item: dict) -> Stage:
    body = _fill(body, item, name)

    def entries(section: str) -> list[tuple[str, dict]]:
        # an entry is a path or a one-key mapping {path: options}
        pairs = [next(iter(e.items())) if isinstance(e, dict) else (e, None) for e in body.get(section) or []]
        return [(posixpath.normpath(path), options or {}) for path, options in pairs]

    outputs = [entry for section in _OUTPUTS for entry in entries(section)]
    return Stage(
        name=name,
        group=group,
        key=key,
        desc=body.get("desc", ""),
        cmd=body.get("cmd", ""),
        deps=tuple(path for path, _ in entries("deps")),
        outs=tuple(path for path, _ in outputs),
        uncached=tuple(path for path, options in outputs if options.get("cache") is False),
    )


def _fill(value: Any, item: dict, stage: str) -> Any:
    """``value`` with every ``${item.<axis>}`` replaced by the axis' value, keys of mappings included."""
    if isinstance(value, dict):
        return {_fill(k, item, stage): _fill(v, item, stage) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, item, stage) for v in value]
    if not isinstance(value, str):
        return value

    def lookup(match: re.Match) -> str:
        scope, _, axis = match[1].strip().partition(".")
        if scope != "item" or axis not in item:
            _refuse(f"stage '{stage}'", {f"'{match[0]}' (only ${{item.<matrix axis>}} is supported)"})
        return item[axis]

    return _INTERPOLATION.sub(lookup, value)


def _link(stages: list[Stage]) -> list[Stage]:
    def overlaps(a: str, b: str) -> bool:
        # DVC treats a path and anything inside it as the same data (a dep on data/ reads an out data/balanced)
        return a == b or a.startswith(b + "/") or b.startswith(a + "/")

    return [
        dataclasses.replace(
            stage,
            upstream=tuple(
                other.name
                for other in stages
                if other is not stage and any(overlaps(d, o) for d in stage.deps for o in other.outs)
            ),
        )
        for stage in stages
    ]
