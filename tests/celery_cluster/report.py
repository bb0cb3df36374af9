"""The figures of a cluster test run, as a Markdown table for the README's "Scheduled retraining" section: per task,
each try's worker, queue, pool, start (seconds after the run's first task started), wall time and state."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path


def when(stamp: str | None) -> datetime | None:
    """An Airflow API timestamp as a datetime (None stays None)."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else None


def origin(tries: dict[str, list[dict]]) -> datetime:
    """When the run's first task started: the table's zero."""
    return min(when(t["start_date"]) for ts in tries.values() for t in ts if t.get("start_date"))


def table(tries: dict[str, list[dict]]) -> list[str]:
    origin_ = origin(tries)
    rows = ["| task | try | worker | queue | pool | start s | wall s | state |", "|---|---:|---|---|---|---:|---:|---|"]
    ordered = sorted(tries.items(), key=lambda kv: min(when(t["start_date"]) or origin_ for t in kv[1]))
    for task, task_tries in ordered:
        for t in task_tries:
            start, end = when(t.get("start_date")), when(t.get("end_date"))
            at = f"{(start - origin_).total_seconds():.0f}" if start else "-"
            wall = f"{(end - start).total_seconds():.0f}" if start and end else "-"
            rows.append(f"| {task} | {t['try_number']} | {t.get('hostname') or '-'} | {t.get('queue')} | "
                        f"{t.get('pool')} | {at} | {wall} | {t['state']} |")  # fmt: skip
    return rows


def write(outcome, path: str | Path) -> None:
    lines = [f"Run `{outcome.run_id}`: {outcome.state}; the whole test, cluster start included: "
             f"{outcome.wall_s:.0f} s, of which {outcome.up_s:.0f} s to bring the cluster up", ""]  # fmt: skip
    lines += table(outcome.tries)
    lines += ["", "What the test did (seconds after the first task started):"]
    lines += [f"- {what}: {(at - origin(outcome.tries)).total_seconds():.0f} s" for what, at in outcome.events.items()]
    lines += [f"- GPU tasks running at the kill: {', '.join(outcome.killed_running) or 'none'}"]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
