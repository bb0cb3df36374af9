"""The promotion gate of the scheduled retraining: champion against challenger, per model, on this run's Test split,
and the promotion that follows a pass (commit, registry tags, push). The command is pipeline/commands/promote.py.

Each model of ``train.*`` is a registry artifact (dvc.yaml ``artifacts:``; versions and stages are GTO tags, see
pipeline/release/registry.py) with its own gate. The challenger is this workspace's model, scored by the evaluate stage
(metrics/evaluate.json). The champions are the version in ``promote.stage`` and those it succeeded since the last
roll-back, each fetched from the registry and re-scored now with the same evaluate code on the same Test split.
The policy (stage, floors, tolerances) comes from the protected branch, not from the commit judged
(pipeline/release/policy.py). Exit statuses of the command, which the DAG reads from here: 0 promote, NOTHING_NEW
(every model is the one already in the stage: Airflow's skip code), REJECTED (a verdict), TRANSIENT (origin or the DVC
remote could not be reached, or a push lost a race: retried), 1 (the gate could not decide: not retried).
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
from pipeline.release import policy, registry, scores, tools

NOTHING_NEW = 99
REJECTED = 98
TRANSIENT = 75  # EX_TEMPFAIL of sysexits.h
SPLIT = "test"


@dataclass(frozen=True)
class Scorer:
    """Scores one fetched model file on this run's Test split: (model name, file) -> evaluate's figures. ``inputs``
    names everything the figures depend on besides the model (the cache key); with a ``cache`` an unchanged champion
    is read from it instead of being fetched and scored."""

    score: Callable[[str, Path], dict]
    inputs: dict
    cache: scores.Cache | None = None


class GateFailed(UserError, RuntimeError):
    """The gate could not decide: the workspace is not reproduced, a figure or the policy is missing (exit 1)."""


class Rejected(GateFailed):
    """The verdict is a rejection: a model missed a floor, trailed a champion too far, or its input contract changed
    with no new lineage decided."""

    exit_code = REJECTED


class Transient(GateFailed):
    """origin or the DVC remote could not be reached, or the promotion's push lost a race: ask again later."""

    exit_code = TRANSIENT


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
    new_lineage: bool = False  # judged by the floor alone: the input contract changed and a new lineage was decided


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
    root: Path, name: str, path: str, rule: policy.Policy, scorer: Scorer, fetched: Path, evaluated: dict,
    new_lineage: bool = False,
) -> ModelDecision:  # fmt: skip
    """The gate for one model; ``evaluated`` is metrics/evaluate.json as this run left it. The champions are the
    lineage's versions made under this run's input contract; if the version in the stage was made under another one,
    the model is rejected unless ``new_lineage`` starts a new lineage (a new major version, judged by the floor)."""
    config = rule.config
    if name not in evaluated:
        raise GateFailed(f"metrics/evaluate.json has no figures for {name}: is it in the evaluate stage?")
    challenger = evaluated[name]
    line = registry.lineage(root, name, config.stage)
    current = line[0] if line else None
    if current is not None and tools.output_hash(root, path) == tools.output_hash(root, path, current.commit):
        reason = f"the model is {name}@{current.version}, already in {config.stage}"
        champions = score(root, name, path, [current], scorer, fetched)
        return ModelDecision(name, "skip", reason, None, challenger, champions)
    ours = policy.contract(root)
    changed = policy.changes(policy.contract(root, current.commit), ours) if current is not None else []
    if changed and not new_lineage:
        reason = (f"the input contract changed since {name}@{current.version} ({'; '.join(changed)}), so no champion"
                  " can be scored on this Test split: start a new lineage, judged by the floor alone, with"
                  " `promote --new-lineage` (the DAG param new_lineage)")  # fmt: skip
        return ModelDecision(name, "reject", reason, None, challenger)
    kept = [] if changed else _same_contract(root, line, ours)
    champions = score(root, name, path, kept, scorer, fetched)
    checks = judge(challenger, champions, config)
    failed = [c for c in checks if not c.passed]
    version = registry.next_version(root, name, major=bool(changed))
    if failed:
        worst = ", ".join(f"{c.metric} {c.value:.4f} < {c.limit:.4f} ({c.against})" for c in failed)
        reason = f"below the gate: {worst}"
        return ModelDecision(name, "reject", reason, None, challenger, champions, checks, bool(changed))
    if changed:
        reason = f"above the floor; a new lineage ({'; '.join(changed)} since {name}@{current.version})"
    elif champions:
        reason = f"above the floor, within {config.tolerance} of {', '.join(champions)}"
    else:
        reason = "above the floor (first version)"
    return ModelDecision(name, "promote", reason, version, challenger, champions, checks, bool(changed))


def _same_contract(root: Path, line: list[registry.Version], ours: dict) -> list[registry.Version]:
    """The lineage back to its first version made under another input contract (a new lineage started there)."""
    kept = []
    for version in line:
        if policy.contract(root, version.commit) != ours:
            break
        kept.append(version)
    return kept


def score(root: Path, name: str, path: str, versions: list, scorer: Scorer, fetched: Path) -> dict[str, dict]:
    """Each version's figures on this run's Test split: from the scorer's cache where it holds them, else its model
    fetched from the registry and scored (then cached)."""
    found = {}
    for v in versions:
        key = scorer.cache.ref(tools.output_hash(root, path, v.commit) or "", scorer.inputs) if scorer.cache else ""
        figures = scorer.cache.get(key) if scorer.cache else None
        if figures is None:
            model = fetched / name / v.version / Path(path).name
            figures = scorer.score(name, registry.fetch(root, v, model, root / ".dvc" / "config.local"))
            if scorer.cache:
                scorer.cache.put(key, figures)
        found[v.version] = figures
    return found


def decide(root: Path, params: Params, scorer: Scorer, rule: policy.Policy | None = None,
           new_lineage: bool = False) -> list[ModelDecision]:  # fmt: skip
    """The gate for every model of dvc.yaml's ``artifacts:``, under ``rule`` (None: the workspace's own params)."""
    rule = rule or policy.of_workspace(params.promote)
    stale = json.loads(tools.dvc(root, "status", "--json") or "{}")
    if stale:
        raise GateFailed(f"the workspace is not reproduced, `dvc status` lists: {', '.join(sorted(stale))}")
    evaluated = json.loads((root / "metrics/evaluate.json").read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="champions-") as fetched:
        return [
            decide_model(root, name, path, rule, scorer, Path(fetched), evaluated, new_lineage)
            for name, path in sorted(registry.artifacts(root).items())
        ]


def outcome(decisions: list[ModelDecision]) -> str:
    actions = {d.action for d in decisions}
    return "reject" if "reject" in actions else "promote" if "promote" in actions else "skip"


def write_reports(root: Path, decisions: list[ModelDecision], metrics: Path, report: Path, run: dict,
                  config: PromoteConfig | None = None) -> None:  # fmt: skip
    from pipeline.release import report as promotion_report

    summary = {"split": SPLIT, "decision": outcome(decisions), **run, "models": {d.name: asdict(d) for d in decisions}}
    if config is not None:  # the report reads the tolerance against the Test figures' uncertainty
        summary["tolerance"] = config.tolerance
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


def keras_scorer(root: Path, params: Params, cache: scores.Cache | None = None) -> Scorer:
    """Scores a model file on this workspace's Test split exactly as the evaluate stage does. The Test images are
    read at the first call: a run with no champion to re-score, or with every one cached, reads none."""
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

    inputs = scores.stage_inputs(root, "evaluate", params.model_dump(mode="json")) if cache else {}  # the cache's key
    return Scorer(score, inputs, cache)


def run_record(root: Path, run_id: str, rule: policy.Policy) -> dict:
    """What the reports and the promotion commit say about this run: its id, the commit, the raw data's version, where
    the gate's policy came from, and the environment the models were made in."""
    return {"run_id": run_id, "commit": tools.git(root, "rev-parse", "HEAD"), "data": data_version(root),
            "policy": rule.source, "environment": environment(root)}  # fmt: skip


def environment(root: Path) -> dict:
    """The environment of a result: the SHA-256 of requirements.lock (what was installed) and, where the deployment
    sets EMOTION_IMAGE_DIGEST, the container image's digest."""
    import hashlib

    lock = root / "requirements.lock"
    found = {"requirements.lock": hashlib.sha256(lock.read_bytes()).hexdigest() if lock.exists() else None}
    if os.environ.get("EMOTION_IMAGE_DIGEST"):
        found["image"] = os.environ["EMOTION_IMAGE_DIGEST"]
    return found


def promotion_message(run: dict, config: PromoteConfig, decisions: list[ModelDecision], contract: dict) -> str:
    """The body of the promotion commit and tags: the run, the gate, the input contract, the lineage decision and the
    figures of every promoted model."""
    promoted = [d for d in decisions if d.action == "promote"]
    figures = {d.name: {"challenger": d.challenger, "champions": d.champions} for d in promoted}
    lineage = sorted(d.name for d in promoted if d.new_lineage)
    body = {**run, "split": SPLIT, "gate": config.model_dump(), "contract": contract, "new_lineage": lineage}
    return json.dumps({**body, "figures": figures}, indent=1)


def data_version(root: Path, raw: str = "data/raw") -> str:
    """The raw data's version: the hash DVC gives the folder (data.dvc's .dir hash), "unknown" where it is untracked."""
    return tools.output_hash(root, raw) or "unknown"
