"""The model registry: GTO's git tags over the `artifacts:` of dvc.yaml, read and written through git, GTO and DVC.

A version is an annotated tag ``<name>@v<major>.<minor>.<patch>`` on the commit whose dvc.lock holds that model; a
stage assignment is a tag ``<name>#<stage>#<n>`` (n counts the assignments) on the same commit. Both formats are
GTO's, and read through GTO's API, so GTO's deregistrations (``<name>@v1.2.0!``) and unassignments
(``<name>#<stage>!#<n>``) count as `gto show` counts them; the model files themselves are fetched from the DVC remote
with `dvc artifacts get`. A registry reference names a model as ``<name>@<stage>`` (``irv2@prod``) or
``<name>@v<semver>`` (``irv2@v1.2.0``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import UserError, yamlfile
from pipeline.release import tools

SEMVER = re.compile(r"v(\d+)\.(\d+)\.(\d+)")
REFERENCE = re.compile(r"(?P<name>[A-Za-z0-9_-]+)@(?P<which>[A-Za-z0-9_.-]+)")


class RegistryError(UserError, RuntimeError):
    """A registry reference or operation that cannot be carried out; the message says why."""


@dataclass(frozen=True)
class Version:
    name: str
    version: str  # "v1.2.0"
    commit: str


def _semver(version: str) -> tuple[int, int, int]:
    m = SEMVER.fullmatch(version)
    if not m:
        raise RegistryError(f"{version!r} is not a version like v1.2.0")
    return int(m[1]), int(m[2]), int(m[3])


def _state(root: Path, name: str) -> list[dict]:
    """GTO's view of artifact ``name``: its registered versions that are not deregistered, each with every stage
    assignment that is not unassigned."""
    from gto import api  # GTO's Python API; heavy, and only the registry's readers need it
    from gto.exceptions import ArtifactNotFound

    try:
        return api.show(str(root), name, assignments_per_version=-1, versions_per_stage=-1)
    except ArtifactNotFound:  # no tag names it yet
        return []


def versions(root: Path, name: str) -> list[Version]:
    """Registered versions of artifact ``name``, oldest first."""
    found = [
        Version(name, v["version"], v["commit_hexsha"]) for v in _state(root, name) if SEMVER.fullmatch(v["version"])
    ]
    return sorted(found, key=lambda v: _semver(v.version))


def next_version(root: Path, name: str, major: bool = False) -> str:
    """v1.0.0 for the first model of ``name``, then the next minor version (each promotion is a new training), or
    with ``major`` the next major one (a new lineage: another input contract)."""
    known = versions(root, name)
    if not known:
        return "v1.0.0"
    first, minor, _ = _semver(known[-1].version)
    return f"v{first + 1}.0.0" if major else f"v{first}.{minor + 1}.0"


def assignments(root: Path, name: str, stage: str) -> list[Version]:
    """The versions ``stage`` was assigned to and not unassigned from, oldest assignment first: by time, then by GTO's
    counter (the n of ``<name>#<stage>#<n>``) for assignments made within one second."""
    found = []
    for v in _state(root, name):
        version = Version(name, v["version"], v["commit_hexsha"])
        for assigned in (s for s in v["stages"] if s["stage"] == stage and s["is_active"]):
            found += [(a["created_at"], _counter(a["tag"]), version) for a in assigned["assignments"]]
    return [version for *_, version in sorted(found, key=lambda f: f[:2])]


def _counter(tag: str) -> int:
    number = tag.rsplit("#", 1)[-1]
    return int(number) if number.isdigit() else 0


def current(root: Path, name: str, stage: str) -> Version | None:
    """The version in ``stage`` now: the latest assignment."""
    found = assignments(root, name, stage)
    return found[-1] if found else None


def lineage(root: Path, name: str, stage: str) -> list[Version]:
    """The current ``stage`` version and those it succeeded, newest first, back to the last roll-back.

    Walking the assignments backwards, each older one must be an older version than the one after it; an older
    assignment of a *newer* version means the one after it rolled back, and what came before the roll-back no longer
    counts. The gate holds a challenger against all of these, so small drops cannot add up across promotions.
    """
    found = list(reversed(assignments(root, name, stage)))
    chain: list[Version] = []
    for v in found:
        if chain and _semver(v.version) >= _semver(chain[-1].version):
            break
        if v not in chain:
            chain.append(v)
    return chain


def fetch(root: Path, version: Version, dest: Path, dvc_config: Path | None = None) -> Path:
    """The model file of ``version``, downloaded from the DVC remote with `dvc artifacts get` into ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    config = ["--config", str(dvc_config)] if dvc_config is not None and dvc_config.exists() else []
    get = ["artifacts", "get", str(root), version.name, "--rev", version.version, *config, "-o", str(dest), "--force"]
    try:
        tools.dvc(root, *get)
    except tools.Unreachable:
        raise  # transient: the gate reports it as such (gate.Transient), not as a bad reference
    except tools.ToolError as exc:
        raise RegistryError(f"cannot fetch {version.name}@{version.version}: {exc}") from exc
    return dest


def resolve(reference: str, root: Path, cache: Path) -> Path:
    """The local model file of ``<name>@<stage>`` or ``<name>@v<semver>``, fetched once into ``cache``."""
    m = REFERENCE.fullmatch(reference)
    if not m:
        raise RegistryError(f"{reference!r} is not a registry reference like irv2@prod or irv2@v1.2.0")
    name, which = m["name"], m["which"]
    if SEMVER.fullmatch(which):
        found = [v for v in versions(root, name) if v.version == which]
        if not found:
            raise RegistryError(f"{name} has no version {which} (`gto show {name}` lists them)")
        version = found[0]
    else:
        version = current(root, name, which)
        if version is None:
            raise RegistryError(f"no version of {name} is in stage {which!r} (`gto show {name}`)")
    local = root / ".dvc" / "config.local"
    return fetch(root, version, cache / name / version.version / model_file(name, root).name, local)


def artifacts(root: Path) -> dict[str, str]:
    """The models of dvc.yaml's ``artifacts:``, each with its file's path in the workspace (where train writes it)."""
    if not (root / "dvc.yaml").is_file():
        raise RegistryError(f"{root / 'dvc.yaml'} not found: run in the project's workspace, or give a model file")
    spec = yamlfile.load(root / "dvc.yaml") or {}  # size- and alias-bounded
    return {name: artifact["path"] for name, artifact in (spec.get("artifacts") or {}).items()}


def model_file(name: str, root: Path = Path(".")) -> Path:
    """The workspace's file of model ``name``, as dvc.yaml's ``artifacts:`` (the one map of paths) places it."""
    paths = artifacts(root)
    if name not in paths:
        raise RegistryError(f"{name} is not an artifact of {root / 'dvc.yaml'} (it lists {', '.join(sorted(paths))})")
    return root / paths[name]


MODEL_HELP = "a model of params.yaml train (its workspace file) or a registry reference: <name>@prod, <name>@v1.2.0"
MODEL_FILE_HELP = "a model file to use instead (default: the model's path in dvc.yaml artifacts)"


def locate(model: str, file: Path | None, names: list[str], root: Path = Path(".")) -> tuple[str, Path]:
    """The (name, file) that ``--model`` and ``--model-file`` of predict and export mean: the workspace's trained
    model, an explicit file, or a registry reference fetched from the DVC remote into ``.registry/``."""
    m = REFERENCE.fullmatch(model)
    name = m["name"] if m else model
    if name not in names:
        raise RegistryError(f"--model {model}: {name} is not a model of params.yaml (one of {', '.join(names)})")
    if file is not None:
        return name, file
    if m:
        return name, resolve(model, root, root / ".registry")
    return name, model_file(name, root)


def register(root: Path, name: str, version: str, stage: str, message: str) -> list[str]:
    """Register ``version`` of ``name`` at HEAD and assign it ``stage`` with GTO; returns the two new tags."""
    from gto import api  # GTO's Python API; heavy, and only a promotion needs it

    who = tools.tagger()  # the worker's git identity, as for the promotion commit
    api.register(str(root), name, tools.git(root, "rev-parse", "HEAD"), version=version, message=message, **who)
    assigned = api.assign(str(root), name, stage, version=version, message=message, **who)
    newest = assigned.tag
    return [f"{name}@{version}", newest]
