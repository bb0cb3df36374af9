"""Promotion gate of the scheduled retraining: champion against challenger, per model, on this run's Test split.

The gate itself is pipeline/release/gate.py; this is its command line.

    python -m pipeline promote check                               # decide; write the report
    python -m pipeline promote apply [--push origin --branch main] # decide again; commit, register, tag, push

Both write metrics/promotion.json and reports/promotion.md. Exit status: 0 promote (or promoted), 1 rejected
(GateFailed), 99 nothing new (every model is the one already in the stage): Airflow's skip code.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from pipeline.config import Params
from pipeline.release import gate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.split("\n\n")[0]
    parser.add_argument("action", choices=["check", "apply"])
    parser.add_argument("--metrics", type=Path, default=Path("metrics/promotion.json"))
    parser.add_argument("--report", type=Path, default=Path("reports/promotion.md"))
    parser.add_argument("--push", metavar="REMOTE", help="git remote that receives the commit and tags (apply)")
    parser.add_argument("--branch", default="main", help="branch of --push that the commit goes to")
    parser.add_argument("--run-id", default=os.environ.get("AIRFLOW_CTX_DAG_RUN_ID", "manual"))


def main(params: Params, args: argparse.Namespace) -> None:
    root = Path.cwd()
    decisions = gate.decide(root, params, gate.keras_scorer(root, params))
    run = gate.run_record(root, args.run_id)
    gate.write_reports(root, decisions, root / args.metrics, root / args.report, run)
    for d in decisions:
        print(f"{d.name}: {d.action}: {d.reason}")
    action = gate.outcome(decisions)
    if action == "reject":
        raise gate.GateFailed(f"the gate rejected a model; the report is {args.report} (figures: {args.metrics})")
    if action == "skip":
        if args.action == "check":
            raise SystemExit(gate.NOTHING_NEW)
        return
    if args.action == "apply":
        message = gate.promotion_message(run, params, decisions)
        reports = [root / args.metrics, root / args.report]
        tags = gate.promote(root, decisions, params.promote, message, reports, args.push, args.branch)
        print(f"promoted: {' '.join(tags)}")
