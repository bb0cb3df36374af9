"""Champions' Test figures, cached on origin by everything they depend on, so that re-scoring an unchanged champion is
a download, not an inference pass (nor a model download).

The key is the SHA-256 of the champion's model hash (from its dvc.lock, no download) and the scorer's inputs: for the
Keras scorer the Test data (the hashes DVC gives data/raw and data/manifest.csv), the evaluate stage's code and params
(its `pipeline/` deps in dvc.yaml, hashed file by file, and the values of its params) and requirements.lock (the
environment that ran it). Any change of those is another key: a miss, scored anew and stored. An entry is a commit
holding ``figures.json`` under ``refs/scores/<key>``, beside the verdicts (pipeline/release/verdicts.py) and, like
them, outside branches and tags.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import yamlfile
from pipeline.release import tools

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
    """What a stage's figures depend on besides the models: the hashes of its data deps (as DVC records them), of its
    code deps under pipeline/, of the values of its params, and of requirements.lock."""
    spec = (yamlfile.load(root / "dvc.yaml") or {})["stages"][stage]
    deps = [str(d) for d in spec.get("deps", [])]
    code = [d for d in deps if d.startswith("pipeline/")]
    data = {d: tools.output_hash(root, d) for d in deps if not d.startswith(("pipeline/", "models/"))}
    values = {}
    for dotted in spec.get("params", []):
        value = params
        for part in str(dotted).split("."):
            value = value.get(part) if isinstance(value, dict) else None
        values[str(dotted)] = value
    return {"data": data, "code": files_digest(root, code), "params": digest(values),
            "environment": files_digest(root, ["requirements.lock"])}  # fmt: skip


@dataclass(frozen=True)
class Cache:
    root: Path
    remote: str  # the git remote holding refs/scores/ (origin)

    def ref(self, model_hash: str, inputs: dict) -> str:
        return f"{NAMESPACE}/{digest({'model': model_hash, 'inputs': inputs})}"

    def get(self, ref: str) -> dict | None:
        """The cached figures under ``ref``; None where there are none (tools.Unreachable when the remote is)."""
        if not tools.git(self.root, "ls-remote", self.remote, ref):
            return None
        tools.git(self.root, "fetch", "--quiet", self.remote, ref)
        return json.loads(tools.git(self.root, "show", "FETCH_HEAD:figures.json"))

    def put(self, ref: str, figures: dict) -> None:
        blob = tools.git(self.root, "hash-object", "-w", "--stdin", stdin=json.dumps(figures, sort_keys=True))
        tree = tools.git(self.root, "mktree", stdin=f"100644 blob {blob}\tfigures.json\n")
        commit = tools.git(self.root, *tools.identity(self.root), "commit-tree", tree, "-m", "Cached Test figures")
        tools.git(self.root, "push", "--quiet", "--force", self.remote, f"{commit}:{ref}")
