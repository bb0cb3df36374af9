"""The retraining DAG as Airflow loads it: no import errors, one task per dvc.yaml stage wired as DVC's graph is,
GPU stages on the `gpu` queue, every DVC task in the one-slot workspace pool, schedule and retry policy."""

from __future__ import annotations

import pytest

from tests import workspace
from tests.dags import airflow_env
from tests.dags.airflow_env import dvc_stages

NOT_STAGES = {"check_workspace", "refresh_data", "compare", "promote"}


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
    # foreach/matrix members sit in a task group named after their dvc.yaml entry
    return name.replace("@", ".")


def test_dag_folder_imports_without_errors(loaded):
    assert loaded["import_errors"] == {}
    assert loaded["dag"] is not None


def test_one_task_per_dvc_stage_running_dvc_repro(dag, stages):
    tasks = dag["tasks"]
    assert set(tasks) - NOT_STAGES == {task_id(s.name) for s in stages}
    for stage in stages:
        assert tasks[task_id(stage.name)]["bash_command"] == f"dvc repro --single-item {stage.name}"
        assert tasks[task_id(stage.name)]["cwd"] == "{{ params.workspace }}"


def test_tasks_follow_dvc_dependencies(dag, stages):
    tasks = dag["tasks"]
    for stage in stages:
        expected = sorted(task_id(up) for up in stage.upstream)
        assert tasks[task_id(stage.name)]["upstream"] == (expected or ["refresh_data"]), stage.name
    leaves = {s.name for s in stages} - {up for s in stages for up in s.upstream}
    assert tasks["compare"]["upstream"] == sorted(task_id(s.name) for s in stages if s.name in leaves)
    assert tasks["promote"]["upstream"] == ["compare"]
    assert tasks["refresh_data"]["upstream"] == ["check_workspace"]


def test_tuning_and_training_run_on_the_gpu_queue(dag, stages, raw_params):
    gpu_groups = set(raw_params["retrain"]["gpu_stages"])
    assert {"tune", "train"} & {s.group for s in stages}, "dvc.yaml lost its tuning and training stages"
    for stage in stages:
        queue = dag["tasks"][task_id(stage.name)]["queue"]
        assert queue == ("gpu" if stage.group in gpu_groups else "default"), stage.name
    for name in NOT_STAGES:
        assert dag["tasks"][name]["queue"] == "default"


def test_every_dvc_task_takes_the_one_workspace_pool(dag):
    for name, task in dag["tasks"].items():
        assert task["pool"] == ("default_pool" if name == "check_workspace" else "dvc_workspace"), name


def test_schedule_runs_and_retries(dag, raw_params):
    assert "0 0 * * 0" in dag["schedule"]  # @weekly, from params.yaml retrain.schedule
    assert dag["catchup"] is False
    assert dag["max_active_runs"] == 1
    assert dag["params"]["workspace"] == str(workspace.REPO)
    settings = raw_params["retrain"]
    for name, task in dag["tasks"].items():
        if name in ("compare", "check_workspace"):
            assert task["retries"] == 0, name  # a verdict does not change by asking again
            continue
        assert task["retries"] == settings["retries"], name
        assert task["retry_exponential_backoff"] == 2.0, name
        hours = settings["timeout_hours"]["gpu" if task["queue"] == "gpu" else "cpu"]
        assert task["execution_timeout_s"] == hours * 3600, name


def test_schedule_and_workspace_come_from_the_environment(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    for name in ("dvc.yaml", "params.yaml"):
        (ws / name).write_bytes((workspace.REPO / name).read_bytes())
    loaded = airflow_env.describe(tmp_path / "home", ws, extra={"EMOTION_RETRAIN_SCHEDULE": "30 2 * * 1-5"})
    assert "30 2 * * 1-5" in loaded["dag"]["schedule"]
    assert loaded["dag"]["params"]["workspace"] == str(ws)
