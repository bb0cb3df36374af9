"""The retraining DAG as Airflow loads it: no import errors, one task per dvc.yaml stage wired as DVC's graph is,
GPU stages on the `gpu` queue and in the GPU pool, a `ref` param that cannot name a path, schedule and retries."""

from __future__ import annotations

import os
import re
import sys

import pytest

from tests import workspace
from tests.dags import airflow_env
from tests.dags.airflow_env import dvc_stages

NOT_STAGES = {"resolve", "compare", "promote"}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory) -> dict:
    return airflow_env.describe(tmp_path_factory.mktemp("airflow-home"))


@pytest.fixture(scope="module")
def dag(loaded) -> dict:
    assert loaded["dag"] is not None, loaded["import_errors"]
    return loaded["dag"]


@pytest.fixture(scope="module")
def stages() -> list:
    return dvc_stages.read(workspace.REPO)


def task_id(name: str) -> str:
    # matrix members sit in a task group named after their dvc.yaml entry
    return name.replace("@", ".")


def test_dag_folder_imports_without_errors(loaded):
    assert loaded["import_errors"] == {}
    assert loaded["dag"] is not None


def test_one_task_per_dvc_stage(dag, stages):
    tasks = dag["tasks"]
    assert set(tasks) - NOT_STAGES == {task_id(s.name) for s in stages}


def test_tasks_follow_dvc_dependencies(dag, stages):
    tasks = dag["tasks"]
    for stage in stages:
        # every task takes the run's commit from `resolve`
        expected = sorted({"resolve", *(task_id(up) for up in stage.upstream)})
        assert tasks[task_id(stage.name)]["upstream"] == expected, stage.name
    leaves = {s.name for s in stages} - {up for s in stages for up in s.upstream}
    assert tasks["compare"]["upstream"] == sorted(["resolve", *(task_id(s.name) for s in stages if s.name in leaves)])
    assert tasks["promote"]["upstream"] == ["compare", "resolve"]
    assert tasks["resolve"]["upstream"] == []


def test_tuning_and_training_run_on_the_gpu_queue(dag, stages, raw_params):
    gpu_groups = set(raw_params["retrain"]["gpu_stages"])
    assert {"tune", "train"} & {s.group for s in stages}, "dvc.yaml lost its tuning and training stages"
    for stage in stages:
        queue = dag["tasks"][task_id(stage.name)]["queue"]
        assert queue == ("gpu" if stage.group in gpu_groups else "default"), stage.name
    for name in NOT_STAGES:
        assert dag["tasks"][name]["queue"] == "default"


def test_gpu_stages_take_the_gpu_pool_so_independent_ones_run_side_by_side(dag, stages, raw_params):
    gpu_groups = set(raw_params["retrain"]["gpu_stages"])
    for stage in stages:
        pool = dag["tasks"][task_id(stage.name)]["pool"]
        assert pool == ("emotion_gpu" if stage.group in gpu_groups else "default_pool"), stage.name
    # no task waits for another of the GPU stages of its own kind: tune@irv2 and tune@irv2_unet are independent
    for group in gpu_groups:
        members = [task_id(s.name) for s in stages if s.group == group]
        for name in members:
            assert not set(dag["tasks"][name]["upstream"]) & set(members), name


def test_schedule_runs_and_retries(dag, raw_params):
    assert "0 0 * * 0" in dag["schedule"]  # @weekly, from params.yaml retrain.schedule
    assert dag["catchup"] is False
    assert dag["max_active_runs"] == 1
    assert dag["params"]["ref"] == ""
    settings = raw_params["retrain"]
    for name, task in dag["tasks"].items():
        # resolve and compare too: they retry an unreachable origin or remote (any other failure is final, raised as
        # AirflowFailException: a verdict does not change by asking again)
        assert task["retries"] == settings["retries"], name
        assert task["retry_exponential_backoff"] == 2.0, name
        hours = settings["timeout_hours"]["gpu" if task["queue"] == "gpu" else "cpu"]
        assert task["execution_timeout_s"] == hours * 3600, name


def test_schedule_comes_from_the_environment(tmp_path):
    loaded = airflow_env.describe(tmp_path / "home", extra={"EMOTION_RETRAIN_SCHEDULE": "30 2 * * 1-5"})
    assert "30 2 * * 1-5" in loaded["dag"]["schedule"]


@pytest.mark.parametrize("ref", ["/etc", "../other", "--upload-pack=touch x", "main; rm -rf /", "a" * 201])
def test_the_ref_param_takes_git_names_only(ref):
    from tests.cluster import workspaces

    assert not re.fullmatch(workspaces.REF, ref)
    with pytest.raises(workspaces.TaskError, match="not a branch, tag or commit name"):
        workspaces.resolve(workspaces.Settings("unused"), ref, [])


@pytest.mark.parametrize("ref", ["main", "v1.2", "release/2026-11", "0123abcd" * 5])
def test_the_ref_param_accepts_branches_tags_and_commits(ref):
    from tests.cluster import workspaces

    assert re.fullmatch(workspaces.REF, ref)


# The task functions of the DAG, called directly in an Airflow child process with the workspace layer failing as asked;
# each failure is then handed to the DAG's failure callback with the rejection hook configured (tests/dags/notify_probe)
_FAIL_AS = """
import os, pathlib, sys, types
import emotion_retraining as dag, workspaces

def failing(*args, **kwargs):
    raise getattr(workspaces, sys.argv[1])("origin said no")

workspaces.resolve = workspaces.gate = failing
workspaces.Settings.from_env = classmethod(lambda cls: workspaces.Settings("unused"))
calls = {
    "resolve": lambda: dag.resolve.function({"ref": ""}),
    "compare": lambda: dag.compare.function("c"),
    "promote": lambda: dag.promote.function("c"),
}
notified = pathlib.Path(os.environ["EMOTION_NOTIFY_FILE"])
for name, call in calls.items():
    try:
        call()
    except Exception as exc:
        notified.unlink(missing_ok=True)
        dag.on_gate_failure({"ti": types.SimpleNamespace(task_id=name), "exception": exc})
        print(name, type(exc).__name__, "hook" if notified.exists() else "-")
"""


@pytest.mark.parametrize(
    ("raised", "seen"),
    [
        # an outage is retried by every task (Airflow's back-off), and is no verdict: no hook
        ("Unreachable", ["resolve Unreachable -", "compare Unreachable -", "promote Unreachable -"]),
        # a task that cannot work (a wrong dvc.yaml, a model that does not load) fails at once, and is no verdict
        (
            "TaskError",
            ["resolve AirflowFailException -", "compare AirflowFailException -", "promote AirflowFailException -"],
        ),
        # the gate's rejection: final, and the one failure that calls the deployment's hook
        ("Rejected", ["resolve AirflowFailException -", "compare GateRejected hook", "promote GateRejected hook"]),
        # the branch moved on before the promotion: nothing to promote, the next run judges the new head
        (
            "Superseded",
            ["resolve AirflowFailException -", "compare AirflowFailException -", "promote AirflowSkipException -"],
        ),
    ],
)
def test_only_an_outage_is_retried_and_only_a_rejection_calls_the_hook(tmp_path, raised, seen):
    home = tmp_path / "home"
    home.mkdir()
    extra = {
        "PYTHONPATH": f"{airflow_env.DAGS}{os.pathsep}{workspace.REPO}",
        "EMOTION_ON_REJECT": "tests.dags.notify_probe:record",
        "EMOTION_NOTIFY_FILE": str(tmp_path / "notified.txt"),
    }
    done = airflow_env.run(home, sys.executable, "-c", _FAIL_AS, raised, extra=extra)
    assert done.stdout.split("\n")[-4:-1] == seen, done.stdout + done.stderr
