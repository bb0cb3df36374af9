"""The retraining DAG end to end (`airflow dags test`) on one temporary workspace with the test profile, three runs
in order: the first trains everything and promotes, the second finds nothing new, the third finds a better
production model and does not promote. Real DVC, real (tiny) trainings, real git tags."""

from __future__ import annotations

import json

import pytest

from tests import workspace
from tests.dags import airflow_env

pytestmark = pytest.mark.integration

GATED = "metrics/train/irv2.json"


@pytest.fixture(scope="module")
def cluster(retraining_run):
    """The Airflow home and the workspace of the session's first DAG run (tests/conftest.py), which the tests below
    go on running the DAG in."""
    return retraining_run.home, retraining_run.workspace


def git(ws, *args: str) -> str:
    return workspace.sh(ws, "git", *args).stdout.strip()


def snapshot(ws) -> dict:
    """What a run that trains or promotes would change: outputs (by modification time), HEAD and the tags."""
    files = [p for d in ("models", "metrics", "dvclive") for p in sorted((ws / d).rglob("*")) if p.is_file()]
    return {
        "files": {str(p.relative_to(ws)): p.stat().st_mtime_ns for p in files + [ws / "dvc.lock"]},
        "head": git(ws, "rev-parse", "HEAD"),
        "tags": git(ws, "tag", "--list"),
    }


def report(ws) -> dict:
    return json.loads((ws / "reports" / "promotion.json").read_text())


def stage_tasks(states: dict) -> dict:
    return {k: v for k, v in states.items() if k not in ("check_workspace", "refresh_data", "compare", "promote")}


def test_first_run_trains_every_stage_and_promotes(cluster, retraining_run):
    home, ws = cluster
    done, states = retraining_run.done, retraining_run.states
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-6000:]
    assert set(states.values()) == {"success"}, states
    assert git(ws, "tag", "--list", "model-*") == "model-1"
    assert git(ws, "describe", "--exact-match", "HEAD") == "model-1"
    committed = git(ws, "show", "--name-only", "--format=%s", "HEAD").splitlines()
    assert committed[0] == "Promote model-1"
    assert {"dvc.lock", GATED, "metrics/train/irv2_unet.json"} <= set(committed)
    assert git(ws, "status", "--porcelain", "--", "dvc.lock", "metrics") == ""
    assert report(ws)["action"] == "promote"
    # the models reached the DVC remote before the tag was set
    assert workspace.dvc(ws, "status", "--cloud", "--json").stdout.strip() in ("", "{}")


def test_second_run_with_nothing_new_trains_nothing_and_promotes_nothing(cluster):
    home, ws = cluster
    if "model-1" not in git(ws, "tag", "--list"):
        pytest.skip("needs the promotion of the first run")
    before = snapshot(ws)
    done, states = airflow_env.dags_test(home, ws)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-6000:]
    assert set(stage_tasks(states).values()) == {"success"}, states  # each one a `dvc repro` that skipped
    assert states["compare"] == "skipped" and states["promote"] == "skipped", states
    assert snapshot(ws) == before
    assert report(ws)["action"] == "skip"


def test_a_model_worse_than_production_is_not_promoted(cluster):
    home, ws = cluster
    if "model-1" not in git(ws, "tag", "--list"):
        pytest.skip("needs the promotion of the first run")
    # Production moved on: a later promoted commit (model-2) whose model scored higher. Simulated in git history
    # only; the workspace keeps its real trained model and metrics, committed back on top.
    real = (ws / GATED).read_text()
    metrics = json.loads(real)
    assert metrics["val"]["macro_f1"] < 0.9, "the tiny model is unexpectedly good: the simulated drop would vanish"
    metrics["val"]["macro_f1"] = 1.0
    (ws / GATED).write_text(json.dumps(metrics, indent=2))
    git(ws, "commit", "-qam", "A better production model")
    git(ws, "tag", "model-2")
    (ws / GATED).write_text(real)
    git(ws, "commit", "-qam", "Back to the workspace's own model")
    before = snapshot(ws)

    done, states = airflow_env.dags_test(home, ws)
    assert done.returncode != 0  # a rejected model fails the run, visibly
    assert set(stage_tasks(states).values()) == {"success"}, states
    assert states["compare"] == "failed" and states["promote"] == "upstream_failed", states
    assert snapshot(ws) == before  # no new tag, no commit, nothing retrained
    decision = report(ws)
    assert decision["action"] == "reject" and decision["baseline"] == "model-2"
    failed = [c for c in decision["checks"] if not c["passed"]]
    assert [(c["file"], c["key"], c["old"]) for c in failed] == [(GATED, "val.macro_f1", 1.0)]
