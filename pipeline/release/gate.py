"""The promotion gate of the scheduled retraining: champion against challenger, per model, on this run's Test split,
and the promotion that follows a pass (commit, registry tags, push). The command is pipeline/commands/promote.py.

Each model of ``train.*`` is a registry artifact (dvc.yaml ``artifacts:``; versions and stages are GTO tags, see
pipeline/release/registry.py) with its own gate. The challenger is this workspace's model, scored by the evaluate stage
(metrics/evaluate.json). The champions are the version in ``promote.stage`` and those it succeeded since the last
roll-back, each fetched from the registry and re-scored now with the same evaluate code on the same Test split.
A rejection is GateFailed; NOTHING_NEW is the exit status of a run where every model is the one already in the stage
(Airflow's skip code), which the DAG reads from here.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipeline import atomic
from pipeline.config import Params, PromoteConfig, UserError
from pipeline.release import registry, tools

NOTHING_NEW = 99
SPLIT = "test"
# scores one fetched model file on this run's Test split: (model name, file) -> evaluate's figures
Scorer = Callable[[str, Path], dict]


class GateFailed(UserError, RuntimeError):
    """A model is not promoted: it missed a floor, trailed a champion too far, or the pipeline is not reproduced."""


@dataclass(frozen=True)
class Check:
    metric: str  # e.g. macro_f1, or per_class.fear.f1
    value: float
    against: str  # "floor" or the champion's version
    limit: float  # the least value that passes
    passed: bool


@dataclass(frozen=True)
class ModelDecision:
    name: str
    action: str  # promote | reject | skip
    reason: str
    version: str | None  # the version a promotion registers
    challenger: dict
    champions: dict[str, dict] = field(default_factory=dict)  # version -> figures re-scored on this Test split
    checks: tuple[Check, ...] = ()


def judge(challenger: dict, champions: dict[str, dict], config: PromoteConfig) -> tuple[Check, ...]:
    """Every check of the gate: each gated metric against its floor and against each champion (minus the
    tolerance); with ``per_class_tolerance``, each class's F1 against each champion's."""
    checks = []
    for metric, floor in config.gate.items():
        checks.append(Check(metric, challenger[metric], "floor", floor, challenger[metric] >= floor - 1e-9))
        for version, figures in champions.items():
            limit = round(figures[metric] - config.tolerance, 6)
            checks.append(Check(metric, challenger[metric], version, limit, challenger[metric] >= limit - 1e-9))
    if config.per_class_tolerance is not None:
        for version, figures in champions.items():
            for label, theirs in figures["per_class"].items():
                ours = challenger["per_class"][label]["f1"]
                limit = round(theirs["f1"] - config.per_class_tolerance, 6)
                checks.append(Check(f"per_class.{label}.f1", ours, version, limit, ours >= limit - 1e-9))
    return tuple(checks)


def decide_model(
    root: Path, name: str, path: str, params: Params, scorer: Scorer, fetched: Path, evaluated: dict
) -> ModelDecision:
    """The gate for one model; ``evaluated`` is metrics/evaluate.json as this run left it."""
    config = params.promote
    if name not in evaluated:
        raise GateFailed(f"metrics/evaluate.json has no figures for {name}: is it in the evaluate stage?")
    challenger = evaluated[name]
    line = registry.lineage(root, name, config.stage)
    config_file = root / ".dvc" / "config.local"
    champions = {
        v.version: scorer(name, registry.fetch(root, v, fetched / name / v.version / Path(path).name, config_file))
        for v in line
    }
    current = line[0] if line else None
    if current is not None and tools.output_hash(root, path) == tools.output_hash(root, path, current.commit):
        reason = f"the model is {name}@{current.version}, already in {config.stage}"
        return ModelDecision(name, "skip", reason, None, challenger, champions)
    checks = judge(challenger, champions, config)
    failed = [c for c in checks if not c.passed]
    version = registry.next_version(root, name)
    if failed:
        worst = ", ".join(f"{c.metric} {c.value:.4f} < {c.limit:.4f} ({c.against})" for c in failed)
        return ModelDecision(name, "reject", f"below the gate: {worst}", None, challenger, champions, checks)
    reason = "above the floor" + (f", within {config.tolerance} of {', '.join(champions)}" if champions else "")
    return ModelDecision(name, "promote", f"{reason} (first version)" if not champions else reason, version,
                         challenger, champions, checks)  # fmt: skip


def decide(root: Path, params: Params, scorer: Scorer) -> list[ModelDecision]:
    stale = json.loads(tools.dvc(root, "status", "--json") or "{}")
    if stale:
        raise GateFailed(f"the workspace is not reproduced, `dvc status` lists: {', '.join(sorted(stale))}")
    evaluated = json.loads((root / "metrics/evaluate.json").read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="champions-") as fetched:
        return [
            decide_model(root, name, path, params, scorer, Path(fetched), evaluated)
            for name, path in sorted(registry.artifacts(root).items())
        ]


def outcome(decisions: list[ModelDecision]) -> str:
    actions = {d.action for d in decisions}
    return "reject" if "reject" in actions else "promote" if "promote" in actions else "skip"


def write_reports(root: Path, decisions: list[ModelDecision], metrics: Path, report: Path, run: dict) -> None:
    from pipeline.release import report as promotion_report

    summary = {"split": SPLIT, "decision": outcome(decisions), **run, "models": {d.name: asdict(d) for d in decisions}}
    atomic.write_json(metrics, summary)
    atomic.write_text(report, promotion_report.markdown(summary))


def promote(root: Path, decisions: list[ModelDecision], config: PromoteConfig, message: str, paths: list[Path],
            push: str | None = None, branch: str = "main") -> list[str]:  # fmt: skip
    """`dvc push`, commit dvc.lock with the git-tracked outputs and ``paths``, register and assign each promoted
    model with GTO; with ``push``, push commit and tags in one atomic `git push`. Returns the new tags."""
    tools.dvc(root, "push")  # first: a tag must never name outputs that the DVC remote lacks
    files = [
        "dvc.lock",
        *tools.git(root, "ls-files", "--cached", "--others", "--exclude-standard", "--", "*.dvc").split(),
    ]
    files += tracked_outputs(root) + [str(p.relative_to(root)) for p in paths if p.exists()]
    files += tools.git(root, "ls-files", "--modified", "--others", "--exclude-standard", "--", "*.gitignore").split()
    ignored = set(tools.git(root, "check-ignore", "--stdin", stdin="\n".join(files), ok=(0, 1)).split())
    tools.git(root, "add", "--", *[f for f in files if f not in ignored])
    promoted = [d for d in decisions if d.action == "promote"]
    subject = "Promote " + ", ".join(f"{d.name}@{d.version}" for d in promoted)
    if not tools.git_succeeds(root, "diff", "--cached", "--quiet"):
        tools.git(root, *tools.identity(root), "commit", "--quiet", "-m", f"{subject}\n\n{message}")
    tags = []
    for d in promoted:
        tags += registry.register(root, d.name, d.version, config.stage, f"{subject}\n\n{message}")
    if push is not None:
        tools.git(root, "push", "--atomic", push, f"HEAD:refs/heads/{branch}", *(f"refs/tags/{t}" for t in tags))
    return tags


def tracked_outputs(root: Path) -> list[str]:
    """The pipeline's files that live in git: outputs with ``cache: false`` (metrics, plots)."""
    from dvc.repo import Repo  # heavy; only a promotion needs it

    with Repo(str(root)) as repo:
        paths = {os.path.relpath(o.fs_path, root) for s in repo.index.stages for o in s.outs if not o.use_cache}
    return sorted(p for p in paths if (root / p).exists())


def keras_scorer(root: Path, params: Params) -> Scorer:
    """Scores a model file on this workspace's Test split exactly as the evaluate stage does. The Test images are
    read at the first call: a run with no champion to re-score reads none."""
    import functools

    import pandas as pd

    from pipeline.evaluation import scoring
    from pipeline.serving import inference

    @functools.cache
    def test_split():
        rows, images, _ = scoring.test_split(pd.read_csv(root / "data/manifest.csv"), root / "data/raw", params)
        return scoring.labels(rows, params), images

    def score(name: str, path: Path) -> dict:
        labels, images = test_split()
        model = inference.load_model(path)
        return scoring.score(labels, scoring.probabilities(model, images, params), params.classes)

    return score


def run_record(root: Path, run_id: str) -> dict:
    """What the reports and the promotion commit say about this run: its id, the commit and the raw data's version."""
    return {"run_id": run_id, "commit": tools.git(root, "rev-parse", "HEAD"), "data": data_version(root)}


def promotion_message(run: dict, params: Params, decisions: list[ModelDecision]) -> str:
    """The body of the promotion commit and tags: the run, the gate and the figures of every promoted model."""
    promoted = [d for d in decisions if d.action == "promote"]
    figures = {d.name: {"challenger": d.challenger, "champions": d.champions} for d in promoted}
    return json.dumps({**run, "split": SPLIT, "gate": params.promote.model_dump(), "figures": figures}, indent=1)


def data_version(root: Path, raw: str = "data/raw") -> str:
    """The raw data's version: the hash DVC gives the folder (data.dvc's .dir hash), "unknown" where it is untracked."""
    return tools.output_hash(root, raw) or "unknown"
