"""Champions' Test figures, cached on origin by everything they depend on, so that re-scoring an unchanged champion is
a download, not an inference pass (nor a model download).

The key is the SHA-256 of the champion's model hash (from its dvc.lock, no download) and the scorer's inputs: for the
Keras scorer the Test data (the hashes DVC gives data/raw and data/manifest.csv), the evaluate stage's code and params
(its `pipeline/` deps in dvc.yaml, hashed file by file, and the values of its params) and requirements.lock (the
environment that ran it). Any change of those is another key: a miss, scored anew and stored; a promotion stores its
new versions' figures as the evaluate stage scored them (``remember``). An entry is a commit holding
``figures.json`` under ``refs/scores/<key>``, beside the verdicts (pipeline/release/verdicts.py) and, like them,
outside branches and tags.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import yamlfile
from pipeline.release import policy, refs, registry, tools

NAMESPACE = "refs/scores"


def digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def files_digest(root: Path, paths: list[str]) -> str:
    """SHA-256 over the bytes of ``paths`` (files, or folders walked in order; bytecode caches left out)."""
    found = hashlib.sha256()
    for path in sorted(paths):
        target = root / path
        members = sorted(p for p in target.rglob("*") if p.is_file()) if target.is_dir() else [target]
        for member in members:
            if "__pycache__" in member.parts:
                continue
            found.update(str(member.relative_to(root)).encode("utf-8") + b"\0")
            found.update(member.read_bytes() if member.is_file() else b"(missing)")
    return found.hexdigest()


def stage_inputs(root: Path, stage: str, params: dict) -> dict:
    """What a stage's figures depend on besides the models: the hashes of its data deps (as DVC records them), of the
    files of its other deps (its code under pipeline/, requirements.lock: the environment), and of the values of its
    params."""
    spec = (yamlfile.load(root / "dvc.yaml") or {})["stages"][stage]
    deps = [str(d) for d in spec.get("deps", [])]
    files = [d for d in deps if d.startswith("pipeline/") or d == "requirements.lock"]
    data = {d: tools.output_hash(root, d) for d in deps if d not in files and not d.startswith("models/")}
    values = {str(key): policy.value_at(params, str(key)) for key in spec.get("params", [])}
    return {"data": data, "files": files_digest(root, files), "params": digest(values)}


@dataclass(frozen=True)
class Cache:
    root: Path
    remote: str  # the git remote holding refs/scores/ (origin)

    def ref(self, model_hash: str, inputs: dict) -> str:
        return f"{NAMESPACE}/{digest({'model': model_hash, 'inputs': inputs})}"

    def get(self, ref: str) -> dict | None:
        """The cached figures under ``ref``; None where there are none (tools.Unreachable when the remote is)."""
        found = refs.read(self.root, self.remote, ref, "figures.json")
        return None if found is None else json.loads(found)

    def put(self, ref: str, figures: dict) -> None:
        data = json.dumps(figures, sort_keys=True).encode("utf-8")
        refs.store(self.root, self.remote, ref, {"figures.json": data}, "Cached Test figures")


def remember(cache: Cache, root: Path, promoted: dict[str, dict], inputs: dict) -> list[str]:
    """After a promotion, the promoted models' figures as the evaluate stage scored them (model name -> figures) go
    into the cache under the key a later re-score of the new version looks up: the same model, Test data, code and
    environment give the same figures, so the next run reads them instead of fetching and scoring that model. Best
    effort: a promotion that happened is not undone by a cache that could not be written. Returns the keys written."""
    paths, written = registry.artifacts(root), []
    for name, figures in promoted.items():
        key = cache.ref(tools.output_hash(root, paths[name]) or "", inputs)
        try:
            cache.put(key, figures)
        except tools.ToolError as exc:
            print(f"{name}: its figures were not cached ({str(exc).splitlines()[0]}); the next run scores it anew")
            continue
        written.append(key)
    return written
