"""Promotion gate of the scheduled retraining: champion against challenger, per model, on this run's Test split.

The gate itself is pipeline/release/gate.py; this is its command line.

    python -m pipeline promote check                               # decide; write the report
    python -m pipeline promote apply [--push origin --branch main] # decide again; commit, register, tag, push

Both write metrics/promotion.json and reports/promotion.md, and with --verdicts push them to origin as the run's
verdict (pipeline/release/verdicts.py); with --scores the champions' figures are cached there
(pipeline/release/scores.py). The policy is params.yaml's ``promote:`` at --policy: by default the pushed
branch as origin has it now (with --push), else this workspace's HEAD. Exit status: 0 promote (or promoted),
98 rejected (a verdict), 99 nothing new (every model is the one already in the stage: Airflow's skip code), 75 a
transient fault (origin or the DVC remote unreachable, a push that lost a race), 1 the gate could not decide.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from pipeline.config import Params
from pipeline.release import gate, policy, scores, tools, verdicts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.split("\n\n")[0]
    parser.add_argument("action", choices=["check", "apply"])
    parser.add_argument("--metrics", type=Path, default=Path("metrics/promotion.json"))
    parser.add_argument("--report", type=Path, default=Path("reports/promotion.md"))
    parser.add_argument("--push", metavar="REMOTE", help="git remote that receives the commit and tags (apply)")
    parser.add_argument("--branch", default="main", help="branch of --push that the commit goes to")
    parser.add_argument("--policy", metavar="REF", help="git revision whose params.yaml `promote:` is the gate "
                        "(default: REMOTE/BRANCH of --push, fetched now; without --push, HEAD)")  # fmt: skip
    parser.add_argument("--new-lineage", action="store_true", help="where a model's input contract (classes, "
                        "image_size, face crop) changed: start a new lineage, judged by the floor alone")  # fmt: skip
    parser.add_argument("--verdicts", metavar="REMOTE", help="push the reports to REMOTE: refs/verdicts/<run>/<action>")
    parser.add_argument("--scores", metavar="REMOTE", help="cache champions' Test figures on REMOTE (refs/scores/)")
    parser.add_argument("--run-id", default=os.environ.get("AIRFLOW_CTX_DAG_RUN_ID", "manual"))


def main(params: Params, args: argparse.Namespace) -> None:
    try:
        judge(params, args, Path.cwd())
    except tools.Unreachable as exc:
        raise gate.Transient(f"{exc}\nA transient fault (origin or the DVC remote unreachable, or a push that lost a "
                             "race): nothing was promoted; run the gate again.") from exc  # fmt: skip


def judge(params: Params, args: argparse.Namespace, root: Path) -> None:
    ref = args.policy or (f"{args.push}/{args.branch}" if args.push else "HEAD")
    rule = policy.from_ref(root, ref)
    cache = scores.Cache(root, args.scores) if args.scores else None
    scorer = gate.keras_scorer(root, params, cache)
    decisions = gate.decide(root, params, scorer, rule, args.new_lineage)
    run = gate.run_record(root, args.run_id, rule)
    gate.write_reports(root, decisions, root / args.metrics, root / args.report, run, rule.config)
    for d in decisions:
        print(f"{d.name}: {d.action}: {d.reason}")
    action = gate.outcome(decisions)
    if action == "promote" and args.action == "apply":
        message = gate.promotion_message(run, rule.config, decisions, policy.contract(root))
        reports = [root / args.metrics, root / args.report]
        tags = gate.promote(root, decisions, rule.config, message, reports, args.push, args.branch)
        print(f"promoted: {' '.join(tags)}")
        if cache is not None:
            scores.remember(cache, root, {d.name: d.challenger for d in decisions if d.action == "promote"},
                            scorer.inputs)  # fmt: skip
    if args.verdicts:  # after a promotion's push: a stored "promote" verdict is one that happened
        reports = [root / args.report, root / args.metrics]
        stored = verdicts.store(root, args.verdicts, args.run_id, args.action, reports)
        print(f"verdict stored: git fetch {args.verdicts} {stored} && git show FETCH_HEAD:{args.report.name}")
    if action == "reject":
        raise gate.Rejected(f"the gate rejected a model; the report is {args.report} (figures: {args.metrics})")
    if action == "skip" and args.action == "check":
        raise SystemExit(gate.NOTHING_NEW)
