"""What the gate holds a challenger to, and what makes two models comparable at all.

The policy (``promote:`` of params.yaml: the stage, the floors, the tolerances) is read from the protected branch's
head at promotion time, never from the commit under judgement: a commit that loosens the gate is judged by the rule
it would replace, and a policy change is a reviewed commit on the branch like any other.

The input contract (CONTRACT) is what a model's inputs and outputs mean. Champions made under another contract cannot
be scored on this run's Test split (other classes, another input size), so a changed contract stops the gate until an
explicit decision starts a new lineage, judged by the floor alone (gate.decide_model).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from pipeline.config import ConfigError, PromoteConfig, yamlfile
from pipeline.config.errors import config_error
from pipeline.release import tools

# params.yaml keys (dotted) that change what a model takes in or gives out
CONTRACT = ("classes", "image_size", "augment.face_crop", "augment.face_margin")


@dataclass(frozen=True)
class Policy:
    config: PromoteConfig
    source: str  # where it was read, for the verdict report: "params.yaml at origin/main (commit 1a2b3c4d5e6f)"


def from_ref(root: Path, ref: str) -> Policy:
    """The gate policy of params.yaml at git revision ``ref``. A remote-tracking ``<remote>/<branch>`` is fetched
    first, so the policy is the branch's as it is now, not as the clone last saw it."""
    if not ref or any(part.startswith("-") for part in ref.split("/")):  # never an option of git's
        raise ConfigError(f"the gate policy's ref {ref!r} is not a git revision name")
    remote, _, branch = ref.partition("/")
    if branch and remote in tools.git(root, "remote").split():
        tools.git(root, "fetch", "--quiet", remote, branch)
    commit = tools.git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", ok=(0, 1))
    if not commit:
        raise ConfigError(f"the gate policy's ref {ref!r} is not a commit of this repository")
    where = f"params.yaml at {ref} (commit {commit[:12]})"
    raw = _params_at(root, commit, where)
    try:
        return Policy(PromoteConfig.model_validate(raw.get("promote")), where)
    except ValidationError as exc:
        raise config_error(exc, "promote") from None


def of_workspace(config: PromoteConfig) -> Policy:
    """The workspace's own params.yaml as the policy: for a check by hand, never for a promotion by the DAG."""
    return Policy(config, "params.yaml of this workspace")


def _params_at(root: Path, commit: str | None, where: str) -> dict:
    if commit is None:
        raw = yamlfile.load(root / "params.yaml")
    else:
        raw = yamlfile.parse(tools.git(root, "show", f"{commit}:params.yaml").encode("utf-8"), where)
    return raw if isinstance(raw, dict) else {}


def contract(root: Path, commit: str | None = None) -> dict:
    """The input contract of params.yaml at ``commit`` (None: the workspace's file)."""
    raw = _params_at(root, commit, f"params.yaml at {commit}")
    return {key: value_at(raw, key) for key in CONTRACT}


def value_at(raw: dict, dotted: str) -> object:
    """The value of a dotted params key (``augment.face_crop``) in ``raw``; None where it is not there."""
    value: object = raw
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def changes(before: dict, after: dict) -> list[str]:
    """What differs between two contracts, one ``key: old -> new`` per key."""
    return [f"{key}: {before.get(key)!r} -> {after.get(key)!r}" for key in CONTRACT if before.get(key) != after[key]]
