"""Scheduled retraining of the emotion classifiers on a cluster: a run is pinned to one git commit, and each task
builds its own workspace at that commit on whatever worker it lands on. Git (origin) and the DVC remote are the
only state the tasks share (dags/workspaces.py; docs/airflow.md is the runbook).

    resolve ─► one task per dvc.yaml stage, in DVC's dependency order ─► compare ─► promote

- `resolve` picks the commit: the head of the branch (after committing updated `dvc import`s to it). A run judges
  and promotes the branch's head only: the DAG param `ref` may pin it (the run is refused if the head is another
  commit), never choose another.
- A stage task clones that commit, runs `dvc repro --pull <stage>` (upstream stages are restored from the DVC
  remote's run-cache, never executed again: the pipeline's CLI refuses to), then pushes the outputs and, last, the
  run-cache record naming them. On a GPU worker it first leases its GPUs (EMOTION_GPU_DEVICES).
- `compare` and `promote` restore the whole pipeline the same way with no stage executing, then apply the gate
  (champion against challenger on this run's Test split, pipeline/release/gate.py) under the policy of the branch's
  head as origin has it then, never the run's own params; each stores its verdict on origin (refs/verdicts/<run>/).
  `promote` pushes the DVC outputs, then the commit and the GTO registry tags to origin in one atomic `git push`.

The DAG holds no ML code and no list of stages: they are read from the dvc.yaml beside this folder when the file is
parsed, the knobs from the `retrain` section of params.yaml (through pipeline/config/, so a wrong key is an import
error that names it).

Failures say their kind: `workspaces.Unreachable` (origin or the DVC remote could not be reached, or a push lost a
race) is retried with the DAG's back-off by every task; in `resolve`, `compare` and `promote` any other failure is
final (AirflowFailException), since a wrong dvc.yaml or a rejected model does not change by asking again. Only a
rejection (GateRejected) calls the deployment's rejection hook.
"""

from __future__ import annotations

import importlib
import os
from datetime import timedelta
from pathlib import Path

import dvc_stages
import pendulum
import workspaces
from airflow.sdk import DAG, Param, TaskGroup, task
from airflow.sdk.exceptions import AirflowFailException

# light (YAML and the config classes; Airflow has loaded pydantic already): nothing of the ML stack
from pipeline import config

# Parse-time settings come from the environment and the files beside the DAG, never from Variables: the DAG processor
# re-parses this file every 30 s or so, and a metadata-DB round trip per parse is what Airflow's docs warn against.
# The pipeline the DAG is built from: the checkout holding this folder, or EMOTION_PIPELINE_DIR where the deployment
# syncs the DAG file apart from the pipeline (its dvc.yaml and params.yaml are all the DAG reads there).
PIPELINE = Path(os.environ.get("EMOTION_PIPELINE_DIR") or Path(__file__).resolve().parents[1])
# GPU stages take a pool sized to the cluster's GPUs (created by the deployment, see docs/airflow.md), so independent
# ones (tune@irv2 and tune@irv2_unet, the two trainings) run side by side, one per GPU; CPU tasks take the default.
GPU_POOL = os.environ.get("EMOTION_GPU_POOL", "emotion_gpu")
GPU_QUEUE = os.environ.get("EMOTION_GPU_QUEUE", "gpu")

STAGES = dvc_stages.read(PIPELINE)
SETTINGS = config.load(PIPELINE / "params.yaml").retrain
GPU_STAGES = set(SETTINGS.gpu_stages)


@task
def resolve(params: dict | None = None) -> str:
    """The run's commit; fails at once (no retries) when that commit's dvc.yaml has other stages than this DAG, or the
    ref is unknown; retried when origin or the DVC remote is unreachable."""
    from airflow.sdk.exceptions import AirflowFailException

    settings = workspaces.Settings.from_env()
    try:
        commit = workspaces.resolve(settings, params["ref"], [s.name for s in STAGES])
    except workspaces.Unreachable:
        raise  # transient: Airflow retries it with the DAG's back-off
    except workspaces.TaskError as exc:
        raise AirflowFailException(str(exc)) from exc
    print(f"run pinned to {commit}")
    return commit


@task
def reproduce(commit: str, stage: str) -> dict:
    settings = workspaces.Settings.from_env()
    done = workspaces.run_stage(settings, commit, stage)
    print(f"{stage} at {commit}: executed {done['executed'] or 'nothing (restored from the DVC remote)'}")
    return done


class GateRejected(AirflowFailException):
    """The gate's verdict is a rejection: final, and the one failure that calls the rejection hook."""


def on_gate_failure(context) -> None:
    """The loud part of a rejection: hand the failed gate to the deployment's hook, named by EMOTION_ON_REJECT as
    ``module:callable`` and called with the task context (``context["exception"]`` carries this run's report).
    Any Airflow notifier instance is such a callable (mail: SmtpNotifier, chat: SlackNotifier, configured by their
    Airflow connection), or a function of the deployment's own. Other failures (an outage, a broken model) are not
    verdicts and call nothing: Airflow's own failure alerts cover them."""
    target = os.environ.get("EMOTION_ON_REJECT")
    if not target or not isinstance(context.get("exception"), GateRejected):
        return
    module, _, name = target.partition(":")
    getattr(importlib.import_module(module), name)(context)


def judge(commit: str, action: str, run_id: str | None, params: dict | None) -> int:
    """workspaces.gate with its failures in Airflow's terms: a rejection is GateRejected, any other failure but a
    transient one (workspaces.Unreachable, retried with the DAG's back-off) is final."""
    settings = workspaces.Settings.from_env()
    new_lineage = bool((params or {}).get("new_lineage"))
    try:
        return workspaces.gate(settings, commit, action, run_id or "manual", new_lineage)
    except workspaces.Unreachable:
        raise
    except workspaces.Rejected as exc:
        raise GateRejected(str(exc)) from exc
    except workspaces.TaskError as exc:
        raise AirflowFailException(str(exc)) from exc


@task(on_failure_callback=on_gate_failure)
def compare(commit: str, run_id: str | None = None, params: dict | None = None) -> None:
    """The gate alone, under the branch's policy; a rejection fails the run without retries (the metrics will not
    change by asking again) and calls the deployment's hook (EMOTION_ON_REJECT)."""
    from airflow.sdk.exceptions import AirflowSkipException

    from pipeline.release.gate import NOTHING_NEW

    if judge(commit, "check", run_id, params) == NOTHING_NEW:
        raise AirflowSkipException(f"nothing new at {commit}: every model is the one already in production")


@task(on_failure_callback=on_gate_failure)
def promote(commit: str, run_id: str | None = None, params: dict | None = None) -> None:
    """Decide again, then `dvc push`, commit, register and assign with GTO, and push commit and tags to origin
    atomically. A push that lost a race is retried; if the branch has moved on meanwhile, the run promotes nothing
    (skipped: the next run judges the new head)."""
    from airflow.sdk.exceptions import AirflowSkipException

    try:
        judge(commit, "apply", run_id, params)
    except AirflowFailException as exc:
        if isinstance(exc.__cause__, workspaces.Superseded):
            raise AirflowSkipException(str(exc.__cause__)) from exc
        raise


def stage_task(stage: dvc_stages.Stage, commit):
    gpu = stage.group in GPU_STAGES
    placement = {"queue": GPU_QUEUE, "pool": GPU_POOL} if gpu else {}  # CPU stages: default queue and pool
    return reproduce.override(
        # task ids allow letters, digits, "_", "-" and "."; matrix members sit in a task group instead of "@"
        task_id="".join(c if c.isalnum() or c in "_-." else "_" for c in stage.key or stage.name),
        execution_timeout=timedelta(hours=SETTINGS.timeout_hours["gpu" if gpu else "cpu"]),
        doc_md=f"**{stage.name}** ({'GPU' if gpu else 'CPU'}): {stage.desc}\n\n`{stage.cmd}`",
        **placement,
    )(commit, stage.name)


with DAG(
    dag_id="emotion_retraining",
    description="Retrain the emotion classifiers with DVC; promote a model only if its gated metrics hold up",
    doc_md=__doc__,
    schedule=os.environ.get("EMOTION_RETRAIN_SCHEDULE") or SETTINGS.schedule,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    # one run at a time: a run finishes (and maybe promotes) before the next one resolves its commit
    max_active_runs=1,
    params={
        # a git name only (no path): a trigger cannot point the workers anywhere but origin
        "ref": Param(
            "",
            type="string",
            pattern=f"^$|{workspaces.REF}",
            description="the head of EMOTION_GIT_BRANCH you expect (branch, tag or commit name): the run is refused "
            "if the head is another commit; empty: whatever the head is",
        ),
        # an operator's decision, recorded in the promotion's tags: where a model's input contract (classes, image
        # size, face crop) changed, its old champions cannot be scored, and a new lineage starts, judged by the floor
        "new_lineage": Param(False, type="boolean", description="start a new lineage where the input contract changed"),
    },  # fmt: skip
    default_args={
        "retries": SETTINGS.retries,
        "retry_delay": timedelta(minutes=SETTINGS.retry_delay_minutes),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(hours=1),
        "execution_timeout": timedelta(hours=SETTINGS.timeout_hours["cpu"]),
    },
    tags=["dvc", "retraining"],
) as dag:
    commit = resolve()
    tasks = {}
    groups: dict[str, TaskGroup] = {}
    for stage in STAGES:
        if stage.key is None:
            tasks[stage.name] = stage_task(stage, commit)
            continue
        if stage.group not in groups:
            groups[stage.group] = TaskGroup(stage.group, tooltip=stage.desc)
        with groups[stage.group]:
            tasks[stage.name] = stage_task(stage, commit)
    for stage in STAGES:
        for name in stage.upstream:
            tasks[name] >> tasks[stage.name]
    leaves = [tasks[s.name] for s in STAGES if not any(s.name in other.upstream for other in STAGES)]
    leaves >> compare(commit) >> promote(commit)
