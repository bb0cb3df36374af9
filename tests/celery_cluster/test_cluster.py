"""The retraining DAG on a real Airflow cluster (tests/celery_cluster/cluster.py): the scheduler, the Celery executor
and two workers, git over SSH, an S3 endpoint as the DVC remote. One run, triggered through the REST API as an
operator would, meets three faults on its way, and the tests below read what happened from Airflow's own records
(task instances and their tries: hostname, queue, pool, start and end), origin and the bucket:

- origin and the DVC remote are unreachable when the run starts: `resolve`, then `validate`, fail and are retried
  with back-off; each comes back once its service does;
- the GPU worker is SIGKILLed (its whole process group, as a container runtime kills it) while `train@...` runs:
  no process of it survives, the scheduler notices the lost task, and the restarted worker runs the retry;
- the run then completes, and promotes.

Run with `make cluster-test` (it installs the Debian services and the cluster lock); `make test` leaves it out."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from tests import workspace
from tests.celery_cluster import cluster as local
from tests.celery_cluster import report
from tests.celery_cluster.report import when

pytestmark = [pytest.mark.cluster, pytest.mark.integration]

GPU_TASKS = ("tune.irv2", "tune.irv2_unet", "train.irv2", "train.irv2_unet")
RETRY_DELAY_S = 6
OVERRIDES = {
    # no schedule: unpausing the DAG must not start a run of its own beside the one the test triggers
    "retrain": {"schedule": None, "retries": 3, "retry_delay_minutes": RETRY_DELAY_S / 60},
}
TAGS = ["irv2@v1.0.0", "irv2#prod#1", "irv2_unet@v1.0.0", "irv2_unet#prod#1"]


@dataclass
class Outcome:
    cluster: local.LocalCluster
    run_id: str
    state: str
    instances: dict[str, dict]
    tries: dict[str, list[dict]]
    events: dict[str, datetime] = field(default_factory=dict)  # what the test did, and when
    killed_running: list[str] = field(default_factory=list)  # GPU tasks running when the worker was killed
    orphans: list[str] = field(default_factory=list)  # processes of the killed worker still alive after the kill
    up_s: float = 0.0  # bringing the cluster up
    wall_s: float = 0.0  # the whole fixture: bring-up, run, records


def _training_started(cluster: local.LocalCluster) -> bool:
    tasks = cluster.base / "worker-gpu" / "tasks"
    return any(" pipeline train" in p for p in local.processes_under(tasks))


@pytest.fixture(scope="module")
def outcome(tmp_path_factory) -> Outcome:
    base = tmp_path_factory.mktemp("celery-cluster")
    started = time.monotonic()
    cluster = local.up(base, OVERRIDES)
    up_s = time.monotonic() - started
    events: dict[str, datetime] = {}
    try:
        # origin and the DVC remote go away before the run starts
        cluster.services["sshd"].stop()
        cluster.services["relay"].stop()
        run_id = cluster.trigger()
        events["triggered"] = now()
        cluster.wait_for_task(run_id, "resolve", {"up_for_retry"}, 180)
        cluster.services["sshd"].restart()
        events["origin back"] = now()
        cluster.wait_for_task(run_id, "validate", {"up_for_retry"}, 300)
        cluster.services["relay"].restart()
        events["remote back"] = now()
        # the GPU worker dies mid-training
        local.wait_for(lambda: _training_started(cluster), "a training process on the GPU worker", 900)
        time.sleep(3)
        running = [t for t, ti in cluster.task_instances(run_id).items() if t in GPU_TASKS
                   and ti["state"] == "running"]  # fmt: skip
        cluster.services["worker-gpu"].kill()
        events["GPU worker killed"] = now()
        time.sleep(2)
        orphans = local.processes_under(cluster.base / "worker-gpu")
        cluster.restart("worker-gpu")
        events["GPU worker back"] = now()
        state = cluster.wait_for_run(run_id, 900)
        instances = cluster.task_instances(run_id)
        tries = {task: cluster.tries(run_id, task) for task in instances}
        result = Outcome(cluster, run_id, state, instances, tries, events, running, orphans)
        result.up_s, result.wall_s = up_s, time.monotonic() - started
        report.write(result, os.environ.get("EMOTION_CLUSTER_REPORT") or base / "report.md")
        yield result
    finally:
        cluster.stop_all()


def now() -> datetime:
    return datetime.now(UTC)


def test_the_run_succeeds_through_the_scheduler_with_every_task(outcome):
    assert outcome.state == "success", outcome.instances
    assert {t: ti["state"] for t, ti in outcome.instances.items()} == dict.fromkeys(outcome.instances, "success")
    expected = {"resolve", "validate", "augment", "evaluate", "compare", "promote", *GPU_TASKS}
    assert set(outcome.instances) == expected


def test_gpu_stages_run_on_the_gpu_worker_in_the_gpu_pool_and_the_rest_on_the_default_worker(outcome):
    for task, ti in outcome.instances.items():
        gpu = task in GPU_TASKS
        assert ti["queue"] == ("gpu" if gpu else "default"), (task, ti["queue"])
        assert ti["pool"] == ("emotion_gpu" if gpu else "default_pool"), (task, ti["pool"])
        hosts = {t["hostname"] for t in outcome.tries[task] if t["state"] == "success"}
        assert hosts == {"worker-gpu" if gpu else "worker-default"}, (task, outcome.tries[task])


def test_the_two_searches_overlap_in_time(outcome):
    """Their first tries, both on the GPU worker: a search still running at the kill (a slow machine) is retried, and
    its retry may restore the run-cache record the first try pushed, so the last try alone says nothing."""
    a, b = outcome.tries["tune.irv2"][0], outcome.tries["tune.irv2_unet"][0]
    assert a["hostname"] == b["hostname"] == "worker-gpu", (a, b)
    assert when(a["start_date"]) < when(b["end_date"]) and when(b["start_date"]) < when(a["end_date"]), (a, b)


def test_a_killed_gpu_worker_leaves_no_process_and_its_training_is_retried_on_the_restarted_worker(outcome):
    trainings = [t for t in outcome.killed_running if t.startswith("train.")]
    assert trainings, ("no training task was running when the worker was killed", outcome.killed_running)
    assert outcome.orphans == [], outcome.orphans
    killed, back = outcome.events["GPU worker killed"], outcome.events["GPU worker back"]
    for task in outcome.killed_running:
        tries = outcome.tries[task]
        assert len(tries) == 2 and [t["state"] for t in tries] == ["failed", "success"], tries
        assert when(tries[0]["start_date"]) < killed < when(tries[0]["end_date"]), (killed, tries[0])
        assert when(tries[1]["start_date"]) > back and tries[1]["hostname"] == "worker-gpu", (back, tries[1])


def test_no_task_folder_is_left_on_either_worker(outcome):
    """Each task removes its clone; the clones of the killed tasks are swept by the next task on that worker."""
    for worker in local.WORKERS:
        left = sorted(p.name for p in (outcome.cluster.base / worker / "tasks").glob("emotion-*"))
        assert left == [], (worker, left)


def test_origin_and_the_remote_out_of_reach_are_retried_with_back_off_until_they_are_back(outcome):
    for task, service_back in (("resolve", "origin back"), ("validate", "remote back")):
        tries, back = outcome.tries[task], outcome.events[service_back]
        assert tries[0]["state"] == "failed" and when(tries[0]["end_date"]) < back, (task, back, tries)
        assert tries[-1]["state"] == "success" and when(tries[-1]["start_date"]) > back, (task, back, tries)
        gap = (when(tries[1]["start_date"]) - when(tries[0]["end_date"])).total_seconds()
        assert gap >= RETRY_DELAY_S - 1, (task, gap)  # the DAG's retry delay, not an immediate loop


def test_the_remote_holds_one_complete_run_record_per_stage_key(outcome):
    records = local.run_records(outcome.cluster)
    stages = [s for s in outcome.instances if s not in ("resolve", "compare", "promote")]
    assert len(records) == len(stages), records
    assert all(len(names) == 1 for names in records.values()), records
    assert local.missing_objects(outcome.cluster) == []


def test_the_promotion_is_on_origin_and_a_fresh_clone_of_its_tag_pulls_with_a_clean_status(outcome, tmp_path):
    cluster = outcome.cluster
    env = cluster.component_env("newcomer")  # a shell with the deploy key, the S3 credentials, the venv first

    def sh(cwd: Path, *args: str) -> str:
        done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    remote_refs = sh(tmp_path, "git", "ls-remote", "--tags", cluster.forge.url)
    assert all(f"refs/tags/{tag}" in remote_refs for tag in TAGS), remote_refs
    sh(tmp_path, "git", "clone", "-q", cluster.forge.url, "clone")
    clone = tmp_path / "clone"
    sh(clone, "git", "checkout", "-q", "irv2@v1.0.0")
    assert sh(clone, "git", "log", "-1", "--format=%s").strip() == "Promote irv2@v1.0.0, irv2_unet@v1.0.0"
    dvc = [str(local.BIN / "dvc")]
    sh(clone, *dvc, "remote", "add", "--local", "--default", "cluster", cluster.env["EMOTION_DVC_REMOTE"])
    sh(clone, *dvc, "remote", "modify", "--local", "cluster", "endpointurl", cluster.s3_endpoint)
    sh(clone, *dvc, "pull", "-q")
    assert sh(clone, *dvc, "status", "--json").strip() in ("", "{}")
    assert (clone / "models" / "irv2_unet" / "model.keras").stat().st_size > 0
    assert json.loads((clone / "metrics" / "promotion.json").read_text())["decision"] == "promote"


LOG_UPLOAD_S = 30  # a try's log goes to the bucket after the try ends; a worker killed sooner loses it


def _log_can_be_there(outcome, attempt: dict) -> bool:
    """A try's log is uploaded by its worker once the try ends: not while the S3 endpoint is cut, not by a worker killed
    within seconds of the end (or during the try)."""
    end = when(attempt["end_date"])
    if end is None or end < outcome.events["remote back"]:
        return False
    killed = outcome.events["GPU worker killed"]
    return attempt["hostname"] != "worker-gpu" or not (
        (killed - end).total_seconds() < LOG_UPLOAD_S and when(attempt["start_date"]) < killed
    )


def test_task_logs_are_in_the_bucket_for_the_ui_of_any_host(outcome):
    prefix = f"airflow/dag_id={local.DAG_ID}/run_id={outcome.run_id}/"
    keys = set(local.objects(outcome.cluster, "emotion-logs", prefix))
    expected = [f"task_id={task}/attempt={t['try_number']}.log"
                for task, tries in outcome.tries.items() for t in tries if _log_can_be_there(outcome, t)]  # fmt: skip
    # never vacuous: the default worker's tasks after the outage, and the retries on the restarted GPU worker
    last = {task: tries[-1] for task, tries in outcome.tries.items()}
    must = [f"task_id={t}/attempt={last[t]['try_number']}.log" for t in ("validate", "augment", "evaluate", "compare",
            "promote", *(k for k in outcome.killed_running if k.startswith("train.")))]  # fmt: skip
    assert set(must) <= set(expected), (must, expected)
    assert [key for key in expected if key not in keys] == [], sorted(keys)


def test_the_harness_runs_compose_s_environment(outcome):
    """What this test proves is what docker/compose.yaml ships: every variable of its Airflow block, same values
    but for this machine's addresses and secrets."""
    block = yaml.safe_load(local.COMPOSE.read_text())["x-airflow-common"]["environment"]
    env = outcome.cluster.env
    assert set(block) <= set(env)
    fixed = {k: v for k, v in block.items() if "${" not in str(v)}
    assert {k: env[k] for k in fixed} == {k: str(v) for k, v in fixed.items()}
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor" and workspace.REPO.name
