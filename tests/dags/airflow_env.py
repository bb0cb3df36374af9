"""Airflow for the DAG tests, in subprocesses: a private AIRFLOW_HOME with a SQLite metadata DB, this checkout's dags/.

Airflow configures itself (settings, ORM) when first imported; running it in child processes keeps that state out
of the pytest process and lets each test point the DAG at its own workspace through the environment.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests import workspace

DAGS = workspace.REPO / "dags"
# the DAG's helper module, importable as Airflow makes it: with dags/ on sys.path
sys.path.insert(0, str(DAGS))
import dvc_stages  # noqa: E402, F401 (re-exported for the tests)

DAG_ID = "emotion_retraining"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))

# What a DagBag shows of the DAG, printed as JSON by a child process. BundleDagBag is the loader the DAG processor
# and the workers use: it puts the bundle (dags/) on sys.path, which the DAG's helper import relies on.
_DESCRIBE = """
import json, sys
from airflow.dag_processing.dagbag import BundleDagBag
bag = BundleDagBag(dag_folder=sys.argv[1], bundle_path=sys.argv[1], bundle_name="dags-folder")
dag = bag.dags.get(sys.argv[2])
print(json.dumps({
    "import_errors": {str(k): v for k, v in bag.import_errors.items()},
    "dag": None if dag is None else {
        "schedule": getattr(dag.timetable, "summary", str(dag.timetable)),
        "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs,
        "params": {k: dag.params[k] for k in dag.params},
        "tasks": {t.task_id: {
            "upstream": sorted(t.upstream_task_ids),
            "queue": t.queue,
            "pool": t.pool,
            "retries": t.retries,
            "retry_exponential_backoff": t.retry_exponential_backoff,
            "execution_timeout_s": t.execution_timeout and t.execution_timeout.total_seconds(),
            "bash_command": getattr(t, "bash_command", None),
            "cwd": getattr(t, "cwd", None),
        } for t in dag.tasks},
    },
}))
"""


def env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of an Airflow child process: ``home`` as AIRFLOW_HOME, plus ``extra`` (the cluster's
    EMOTION_* settings, see tests/cluster.py)."""
    return {
        **workspace.env(),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        **(extra or {}),
    }


def run(home: Path, *args: str, extra: dict | None = None, check: bool = True):
    done = subprocess.run(args, env=env(home, extra), capture_output=True, text=True, timeout=1800, cwd=home)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {done.returncode}\n{done.stdout[-6000:]}\n{done.stderr[-6000:]}")
    return done


def describe(home: Path, extra: dict | None = None) -> dict:
    """The DAG as Airflow loads it (import errors, schedule, tasks with queue, pool, upstream ...)."""
    home.mkdir(parents=True, exist_ok=True)
    done = run(home, sys.executable, "-c", _DESCRIBE, str(DAGS), DAG_ID, extra=extra)
    return json.loads(done.stdout.strip().splitlines()[-1])


def migrate(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    run(home, AIRFLOW, "db", "migrate")


@dataclass(frozen=True)
class DagRun:
    done: subprocess.CompletedProcess  # the `airflow dags test` process
    states: dict[str, str]  # each task's final state
    results: dict[str, object]  # each task's return value (XCom), where it returned one

    def log(self) -> str:
        return self.done.stdout[-8000:] + self.done.stderr[-8000:]


def dags_test(home: Path, extra: dict[str, str], conf: dict | None = None) -> DagRun:
    """One `airflow dags test` run of the DAG with the cluster settings ``extra``; its tasks' states and results."""
    done = run(home, AIRFLOW, "dags", "test", DAG_ID, "--conf", json.dumps(conf or {}), extra=extra, check=False)
    with sqlite3.connect(home / "airflow.db") as db:
        (run_id,) = db.execute(
            "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (DAG_ID,)
        ).fetchone()
        states = dict(db.execute("SELECT task_id, state FROM task_instance WHERE run_id = ?", (run_id,)).fetchall())
        rows = db.execute("SELECT task_id, value FROM xcom WHERE run_id = ? AND key = 'return_value'", (run_id,))
        results = {task: _decode(value) for task, value in rows.fetchall()}
    return DagRun(done, states, results)


def _decode(value):
    # the metadata DB keeps an XCom as JSON text (bytes in SQLite); a string may hold one more level of JSON
    while isinstance(value, (bytes, str)):
        try:
            value = json.loads(value)
        except ValueError:
            break
    return value
