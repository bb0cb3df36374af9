"""Every verdict of the gate (promote, reject, skip) kept on origin, outside branches and tags.

A verdict is a commit whose tree holds the run's two reports (promotion.md, promotion.json), child of the commit the
run judged, under ``refs/verdicts/<run id>/<check|apply>``. Nothing fetches that namespace by default, so clones and
GTO do not see it; the report outlives the task's workspace, and the task's log names the ref:

    git fetch origin refs/verdicts/<run id>/check && git show FETCH_HEAD:promotion.md
"""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.release import refs, tools

NAMESPACE = "refs/verdicts"


def ref(run_id: str, action: str) -> str:
    """The ref of a run's verdict: the run id made a valid ref component (Airflow's hold ``:`` and ``+``)."""
    safe = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9_.+-]", "_", run_id)).strip(".") or "run"
    return f"{NAMESPACE}/{safe}/{action}"


def store(root: Path, remote: str, run_id: str, action: str, files: list[Path]) -> str:
    """Commit ``files`` (by their names) as the verdict of ``run_id``, child of the judged commit, and push it to
    ``remote``; returns the ref. A retry of the same run replaces its verdict."""
    name = ref(run_id, action)
    contents = {f.name: f.read_bytes() for f in files}
    judged = tools.git(root, "rev-parse", "HEAD")
    refs.store(root, remote, name, contents, f"Verdict of run {run_id} ({action})", judged)
    return name


def read(root: Path, remote: str, run_id: str, action: str, name: str = "promotion.md") -> str | None:
    """A stored verdict's file, fetched from ``remote``; None where that run has no such verdict."""
    return refs.read(root, remote, ref(run_id, action), name)
