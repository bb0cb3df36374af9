"""The stages of a dvc.yaml as the retraining DAG needs them: DVC's own names, which stages each one waits for.

A plain YAML read with no DVC import, because the DAG processor re-parses DAG files every 30 s or so and must stay
light. It covers what this project's dvc.yaml uses (``foreach``/``matrix`` entries, ``${item...}``/``${key}``, vars
from params.yaml, ``wdir``); tests/dags check names and edges against DVC's own graph so the two cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import itertools
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# DVC's interpolation syntax, "\${" being an escaped literal
_INTERPOLATION = re.compile(r"(?<!\\)\$\{(?P<inner>.*?)\}")


@dataclass(frozen=True)
class Stage:
    name: str  # DVC's address, e.g. "train@irv2": what `dvc repro` takes
    group: str  # the dvc.yaml entry it comes from, e.g. "train"
    key: str | None  # its foreach/matrix key, e.g. "irv2"; None for a plain stage
    desc: str
    cmd: str
    deps: tuple[str, ...]
    outs: tuple[str, ...]  # outs, metrics and plots: everything another stage may depend on
    uncached: tuple[str, ...] = ()  # those of them with `cache: false` (kept in git, not in the DVC cache)
    upstream: tuple[str, ...] = ()  # names of the stages whose outputs this one reads


def read(workspace: str | Path) -> list[Stage]:
    """Every stage of ``workspace``/dvc.yaml in file order, each with the stages it depends on."""
    workspace = Path(workspace)
    spec = yaml.safe_load((workspace / "dvc.yaml").read_text(encoding="utf-8")) or {}
    context = _vars(workspace, spec.get("vars", []))
    stages = [stage for group, body in (spec.get("stages") or {}).items() for stage in _expand(group, body, context)]
    return _link(stages)


def topological(stages: list[Stage]) -> list[Stage]:
    """``stages`` reordered so that each comes after the stages it depends on (file order breaks ties)."""
    done: list[Stage] = []
    names: set[str] = set()
    pending = list(stages)
    while pending:
        ready = [s for s in pending if set(s.upstream) <= names]
        if not ready:
            raise ValueError(f"dvc.yaml: stages depend on each other in a cycle: {[s.name for s in pending]}")
        done.append(ready[0])
        names.add(ready[0].name)
        pending.remove(ready[0])
    return done


def _vars(workspace: Path, entries: list) -> dict:
    # DVC always loads params.yaml into the interpolation context; `vars` may add files (optionally `file:keys`)
    # or inline mappings
    context: dict = {}
    for entry in ["params.yaml", *entries]:
        if isinstance(entry, dict):
            context.update(entry)
            continue
        path = workspace / str(entry).split(":", 1)[0]
        if path.suffix in (".yaml", ".yml") and path.exists():
            context.update(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    return context


def _expand(group: str, body: dict, context: dict) -> Iterable[Stage]:
    if "foreach" in body:
        items = _resolve(body["foreach"], context)
        template = body["do"]
        if isinstance(items, dict):
            pairs = [(_to_str(k), {"key": _to_str(k), "item": v}) for k, v in items.items()]
        elif any(isinstance(v, (dict, list)) for v in items):
            # DVC names composite items by their index
            pairs = [(str(i), {"item": v}) for i, v in enumerate(items)]
        else:
            pairs = [(_to_str(v), {"item": v}) for v in items]
    elif "matrix" in body:
        axes = {name: _resolve(values, context) for name, values in body["matrix"].items()}
        template = {k: v for k, v in body.items() if k != "matrix"}
        pairs = []
        for combination in itertools.product(*(list(enumerate(v)) for v in axes.values())):
            item = {name: value for name, (_, value) in zip(axes, combination, strict=True)}
            key = "-".join(
                f"{name}{i}" if isinstance(value, (dict, list)) else _to_str(value)
                for name, (i, value) in zip(axes, combination, strict=True)
            )
            pairs.append((key, {"key": key, "item": item}))
    else:
        yield _stage(group, group, None, body, context)
        return
    for key, extra in pairs:
        yield _stage(f"{group}@{key}", group, key, template, {**context, **extra})


def _stage(name: str, group: str, key: str | None, body: dict, context: dict) -> Stage:
    wdir = str(_resolve(body.get("wdir", "."), context))

    def paths(section: str, uncached_only: bool = False) -> tuple[str, ...]:
        # an entry is a path or a one-key mapping {path: options}
        entries = body.get(section) or []
        if uncached_only:
            entries = [
                e for e in entries if isinstance(e, dict) and (next(iter(e.values())) or {}).get("cache") is False
            ]
        raw = [next(iter(e)) if isinstance(e, dict) else e for e in entries]
        return tuple(posixpath.normpath(posixpath.join(wdir, str(_resolve(p, context)))) for p in raw)

    cmd = body.get("cmd", "")
    cmd = " && ".join(cmd) if isinstance(cmd, list) else cmd
    return Stage(
        name=name,
        group=group,
        key=key,
        desc=str(_resolve(body.get("desc", ""), context)),
        cmd=str(_resolve(cmd, context)),
        deps=paths("deps"),
        outs=paths("outs") + paths("metrics") + paths("plots"),
        uncached=tuple(p for section in ("outs", "metrics", "plots") for p in paths(section, uncached_only=True)),
    )


def _link(stages: list[Stage]) -> list[Stage]:
    def overlaps(a: str, b: str) -> bool:
        # DVC treats a path and anything inside it as the same data (a dep on data/ reads an out data/balanced)
        return a == b or a.startswith(b + "/") or b.startswith(a + "/")

    linked = []
    for stage in stages:
        upstream = tuple(
            other.name
            for other in stages
            if other is not stage and any(overlaps(d, o) for d in stage.deps for o in other.outs)
        )
        linked.append(dataclasses.replace(stage, upstream=upstream))
    return linked


def _resolve(value: Any, context: dict) -> Any:
    if not isinstance(value, str):
        return value
    whole = _INTERPOLATION.fullmatch(value)
    if whole:  # "${models}" stands for the value itself, which may be a list or a mapping
        return _lookup(whole["inner"], context)
    return _INTERPOLATION.sub(lambda m: _to_str(_lookup(m["inner"], context)), value)


def _lookup(dotted: str, context: dict) -> Any:
    value: Any = context
    for part in re.split(r"\.|\[(\d+)\]", dotted.strip()):
        if not part:
            continue
        try:
            value = value[int(part)] if isinstance(value, list) else value[part]
        except (KeyError, IndexError, TypeError, ValueError):
            raise KeyError(f"dvc.yaml: cannot resolve '${{{dotted}}}'") from None
    return value


def _to_str(value: Any) -> str:
    # as DVC writes values into names and commands
    return ("true" if value else "false") if isinstance(value, bool) else str(value)
