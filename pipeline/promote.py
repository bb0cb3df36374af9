"""Promotion gate of the scheduled retraining: does the model in this workspace replace the production one?

The production model is the commit of the newest git tag ``<promote.tag_prefix><n>``. ``dvc metrics diff`` against
that tag shows each gated metric (``promote.gate``: metrics file -> key, higher is better); the workspace is promoted
when none dropped by more than ``promote.tolerance``, or when nothing was promoted yet. Promoting pushes the DVC
outputs, commits dvc.lock with the git-tracked outputs (metrics, plots, reports) and tags the commit.

    python -m pipeline promote check [--report FILE]   # decide only
    python -m pipeline promote apply [--report FILE]   # decide again, then push, commit and tag
    python -m pipeline promote apply --push origin --branch main   # ... and push commit and tag to git, atomically

Both write the decision to the report. Exit status: 0 promote (or promoted), 1 rejected (GateFailed),
99 nothing new since the last tag: Airflow's BashOperator marks the task skipped on 99.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pipeline import atomic
from pipeline.config import Params, PromoteConfig

NOTHING_NEW = 99
# Whether anything is new since the last promotion: dvc.lock (every stage's deps, params and outs) and the data
# sources, beside the gated metrics. Whether something new is promoted is then up to the metrics alone.
STATE_FILES = ("dvc.lock", "*.dvc")


class GateFailed(RuntimeError):
    """The workspace's model is not promoted: a gated metric dropped too far, or the pipeline is not reproduced."""


@dataclass(frozen=True)
class Check:
    file: str
    key: str
    old: float | None
    new: float | None
    passed: bool
    note: str

    def line(self) -> str:
        def show(v: float | None) -> str:
            return "-" if v is None else f"{v:.4f}"

        change = f" ({self.new - self.old:+.4f})" if self.old is not None and self.new is not None else ""
        verdict = "ok" if self.passed else "DROP"
        line = f"{verdict:4}  {self.file} {self.key}: {show(self.old)} -> {show(self.new)}{change}  {self.note}"
        return line.rstrip()


@dataclass(frozen=True)
class Decision:
    action: Literal["promote", "reject", "skip"]
    reason: str
    baseline: str | None  # the newest promoted tag
    tag: str | None  # the tag a promotion creates
    tolerance: float
    checks: tuple[Check, ...] = ()

    def summary(self) -> str:
        lines = [f"{self.action}: {self.reason}"]
        lines += [f"  {c.line()}" for c in self.checks]
        return "\n".join(lines)


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout.strip()


def dvc(root: Path, *args: str) -> str:
    # the DVC of this interpreter, as the stages themselves run it
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"dvc {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout.strip()


def promoted_tags(root: Path, prefix: str) -> list[str]:
    """Tags ``<prefix><n>``, oldest first by n (a counter, so the order does not hang on clocks)."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)")
    numbered = [(int(m[1]), t) for t in git(root, "tag", "--list").splitlines() if (m := pattern.fullmatch(t))]
    return [t for _, t in sorted(numbered)]


def next_tag(tags: list[str], prefix: str) -> str:
    return f"{prefix}{int(tags[-1][len(prefix) :]) + 1 if tags else 1}"


def compare(root: Path, baseline: str, config: PromoteConfig) -> tuple[Check, ...]:
    """``dvc metrics diff`` of the gated metrics, baseline tag against the workspace."""
    diff = json.loads(dvc(root, "metrics", "diff", baseline, "--all", "--json", "--targets", *config.gate) or "{}")
    checks = []
    for file, key in config.gate.items():
        entry = diff.get(file, {}).get(key, {})
        old, new = entry.get("old"), entry.get("new")
        if not _number(new):
            checks.append(Check(file, key, _or_none(old), None, False, "missing from the workspace"))
        elif not _number(old):
            checks.append(Check(file, key, None, new, True, f"no baseline in {baseline}"))
        else:
            drop = old - new
            # a hair of slack so that a drop of exactly the tolerance, written as decimals, still passes
            passed = drop <= config.tolerance + 1e-9
            checks.append(Check(file, key, old, new, passed, "" if passed else f"dropped {drop:.4f}"))
    return tuple(checks)


def decide(root: Path, config: PromoteConfig) -> Decision:
    stale = json.loads(dvc(root, "status", "--json") or "{}")
    if stale:
        raise GateFailed(f"the workspace is not reproduced, `dvc status` lists: {', '.join(sorted(stale))}")
    tags = promoted_tags(root, config.tag_prefix)
    new_tag = next_tag(tags, config.tag_prefix)
    if not tags:
        return Decision("promote", "no promoted model yet", None, new_tag, config.tolerance)
    baseline = tags[-1]
    changed = subprocess.run(
        ["git", "diff", "--quiet", baseline, "--", *STATE_FILES, *config.gate], cwd=root, capture_output=True
    )
    if changed.returncode == 0:
        return Decision("skip", f"nothing changed since {baseline}", baseline, None, config.tolerance)
    checks = compare(root, baseline, config)
    failed = [c for c in checks if not c.passed]
    if failed:
        reason = f"{len(failed)} gated metric(s) worse than {baseline} beyond the tolerance {config.tolerance}"
        return Decision("reject", reason, baseline, None, config.tolerance, checks)
    return Decision(
        "promote",
        f"no gated metric dropped by more than {config.tolerance}",
        baseline,
        new_tag,
        config.tolerance,
        checks,
    )


def tracked_outputs(root: Path) -> list[str]:
    """The pipeline's files that live in git: outputs with ``cache: false`` (metrics, plots, small reports)."""
    from dvc.repo import Repo  # heavy; only a promotion needs it

    with Repo(str(root)) as repo:
        paths = {
            os.path.relpath(out.fs_path, root) for stage in repo.index.stages for out in stage.outs if not out.use_cache
        }
    return sorted(p for p in paths if (root / p).exists())


def promote(
    root: Path, decision: Decision, report: Path | None = None, push: str | None = None, branch: str = "main"
) -> None:
    """Push the outputs, commit what git tracks of them (and ``report``), tag the commit; with ``push``, push commit
    and tag to that git remote's ``branch`` in one atomic push (a rejected push, e.g. a branch that moved, fails)."""
    # push first: a tag must never name outputs that the remote lacks
    dvc(root, "push")
    changed_ignores = git(root, "ls-files", "--modified", "--others", "--exclude-standard", "--", "*.gitignore")
    paths = [
        "dvc.lock",
        *git(root, "ls-files", "--cached", "--others", "--exclude-standard", "--", "*.dvc").splitlines(),
        *tracked_outputs(root),
        *changed_ignores.splitlines(),
        *([str(report.relative_to(root))] if report is not None and report.exists() else []),
    ]
    # some outputs stay out of git on purpose (a search's resumable state, .gitignored): leave them there
    ignored = subprocess.run(
        ["git", "check-ignore", "--stdin"], cwd=root, input="\n".join(paths), capture_output=True, text=True
    ).stdout.splitlines()
    git(root, "add", "--", *[p for p in paths if p not in ignored])
    identity = _identity(root)
    message = f"Promote {decision.tag}\n\n{decision.summary()}\n"
    if subprocess.run(["git", "diff", "--cached", "--quiet"], cwd=root).returncode != 0:
        git(root, *identity, "commit", "--quiet", "-m", message)
    git(root, *identity, "tag", "--annotate", decision.tag, "-m", message)
    if push is not None:
        # the DVC push above came first: a tag on the git remote never names outputs the DVC remote lacks
        git(root, "push", "--atomic", push, f"HEAD:refs/heads/{branch}", f"refs/tags/{decision.tag}")


def main(params: Params, argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline promote", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["check", "apply"])
    parser.add_argument("--report", default="reports/promotion.json", help="where the decision is written")
    parser.add_argument("--push", metavar="REMOTE", help="git remote that receives the commit and tag (apply)")
    parser.add_argument("--branch", default="main", help="branch of --push that the commit goes to")
    args = parser.parse_args(argv)
    root = Path.cwd()
    report = root / args.report
    decision = decide(root, params.promote)
    atomic.write_json(report, {**dataclasses.asdict(decision), "head": git(root, "rev-parse", "HEAD")})
    print(decision.summary())
    if decision.action == "reject":
        raise GateFailed(f"{decision.reason}; the decision is in {args.report}")
    if decision.action == "skip":
        if args.action == "check":
            raise SystemExit(NOTHING_NEW)
        return
    if args.action == "apply":
        promote(root, decision, report, push=args.push, branch=args.branch)
        print(f"promoted as {decision.tag}")


def _identity(root: Path) -> list[str]:
    # a worker without a git identity still commits, under a name that says who did it; GIT_AUTHOR_*/GIT_COMMITTER_*
    # in the environment outrank this, as they outrank any git config
    if subprocess.run(["git", "config", "user.email"], cwd=root, capture_output=True).returncode == 0:
        return []
    return ["-c", "user.name=emotion-retraining", "-c", "user.email=retraining@localhost"]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _or_none(value: Any) -> float | None:
    return value if _number(value) else None
