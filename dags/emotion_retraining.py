"""Scheduled retraining of the emotion classifiers: refresh the data, reproduce every dvc.yaml stage in dependency
order (tuning and training on GPU workers), then promote the result only if its metrics hold up against the last
promoted model (`python -m pipeline promote`, see docs/airflow.md).

The DAG holds no ML code: each task runs DVC or the pipeline's CLI in the workspace, a git + DVC checkout of this
repository. Its stages are read from that workspace's dvc.yaml when the file is parsed, its knobs from the `retrain`
section of params.yaml; nothing here lists the stages again.
"""

from __future__ import annotations

import os
import shlex
from datetime import timedelta
from pathlib import Path

import dvc_stages
import pendulum
import yaml
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, Param, TaskGroup, task

# Parse-time settings come from the environment and the workspace's files, never from Variables: the DAG processor
# re-parses this file every 30 s or so, and a metadata-DB round trip per parse is what Airflow's docs warn against.
WORKSPACE = Path(os.environ.get("EMOTION_WORKSPACE") or Path(__file__).resolve().parents[1])
# DVC locks its workspace (.dvc/tmp/lock) for the whole of a `dvc repro`, `push` or `status`, and a second command
# fails on the lock after a few seconds instead of waiting. So every task that runs DVC takes the single slot of
# this pool; branches that could run side by side (train@irv2, train@irv2_unet) take turns, and neither another DAG
# nor a manual trigger can race a running stage. A task has exactly one pool, so the GPU stages take this one too;
# GPU capacity is bounded by the `gpu` queue's workers instead (one celery slot per GPU, see docker/compose.yaml).
# A deployment with several workspaces gives each its own pool (EMOTION_DVC_POOL, created with one slot).
DVC_POOL = os.environ.get("EMOTION_DVC_POOL", "dvc_workspace")
GPU_QUEUE = os.environ.get("EMOTION_GPU_QUEUE", "gpu")

STAGES = dvc_stages.topological(dvc_stages.read(WORKSPACE))
SETTINGS = yaml.safe_load((WORKSPACE / "params.yaml").read_text(encoding="utf-8"))["retrain"]
GPU_STAGES = set(SETTINGS["gpu_stages"])

# `dvc pull` restores data sources and the last outputs from the remote (a fresh worker checkout then skips what is
# unchanged; --allow-missing: outputs never pushed are simply rebuilt); imported data is re-fetched from its source.
REFRESH = """set -euo pipefail
dvc pull --allow-missing
git ls-files -- '*.dvc' | while IFS= read -r file; do
  if grep -q '^deps:' "$file"; then dvc update "$file"; fi
done
"""


@task(retries=0)
def check_workspace(params: dict | None = None) -> list[str]:
    """Fail early, without retries, when the workspace is not the pipeline this DAG was parsed from."""
    from airflow.sdk.exceptions import AirflowFailException

    workspace = Path(params["workspace"])
    if not (workspace / ".dvc").is_dir() or not (workspace / ".git").exists():
        raise AirflowFailException(f"{workspace} is not a git + DVC workspace")
    found = [s.name for s in dvc_stages.read(workspace)]
    if sorted(found) != sorted(s.name for s in STAGES):
        raise AirflowFailException(
            f"{workspace}/dvc.yaml has stages {found}, this DAG was parsed with {[s.name for s in STAGES]}: "
            f"point EMOTION_WORKSPACE at the workspace so the DAG processor re-reads it"
        )
    return found


def stage_task(stage: dvc_stages.Stage) -> BashOperator:
    gpu = stage.group in GPU_STAGES
    placement = {"queue": GPU_QUEUE} if gpu else {}  # CPU stages stay on the configured default queue
    return BashOperator(
        # task ids allow letters, digits, "_", "-" and "."; foreach/matrix members sit in a task group instead of "@"
        task_id="".join(c if c.isalnum() or c in "_-." else "_" for c in stage.key or stage.name),
        # --single-item: Airflow orders the stages; DVC skips a stage whose deps, params and outs are unchanged,
        # so a rerun of a finished task (or of a whole run with nothing new) trains nothing
        bash_command=f"dvc repro --single-item {shlex.quote(stage.name)}",
        cwd="{{ params.workspace }}",
        **placement,
        execution_timeout=timedelta(hours=SETTINGS["timeout_hours"]["gpu" if gpu else "cpu"]),
        doc_md=f"**{stage.name}** ({'GPU' if gpu else 'CPU'}): {stage.desc}\n\n`{stage.cmd}`",
    )


with DAG(
    dag_id="emotion_retraining",
    description="Retrain the emotion classifiers with DVC; promote a model only if its gated metrics hold up",
    doc_md=__doc__,
    schedule=os.environ.get("EMOTION_RETRAIN_SCHEDULE") or SETTINGS["schedule"],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    # one run at a time: a run finishes (and maybe promotes) before the next one reads the workspace
    max_active_runs=1,
    params={
        "workspace": Param(str(WORKSPACE), type="string", description="git + DVC checkout the stages run in"),
    },
    default_args={
        "pool": DVC_POOL,
        "retries": SETTINGS["retries"],
        "retry_delay": timedelta(minutes=SETTINGS["retry_delay_minutes"]),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(hours=1),
        "execution_timeout": timedelta(hours=SETTINGS["timeout_hours"]["cpu"]),
    },
    tags=["dvc", "retraining"],
) as dag:
    refresh_data = BashOperator(task_id="refresh_data", bash_command=REFRESH, cwd="{{ params.workspace }}")
    check_workspace.override(pool="default_pool")() >> refresh_data

    tasks: dict[str, BashOperator] = {}
    groups: dict[str, TaskGroup] = {}
    for stage in STAGES:
        if stage.key is None:
            tasks[stage.name] = stage_task(stage)
            continue
        if stage.group not in groups:
            groups[stage.group] = TaskGroup(stage.group, tooltip=stage.desc)
        with groups[stage.group]:
            tasks[stage.name] = stage_task(stage)
    for stage in STAGES:
        upstream = [tasks[name] for name in stage.upstream] or [refresh_data]
        upstream >> tasks[stage.name]

    # exit 99 (nothing new since the last promoted tag) skips the promotion; a rejection fails the run, on purpose
    # without retries: the metrics will not change by asking again
    compare = BashOperator(
        task_id="compare",
        bash_command="python -m pipeline promote check",
        cwd="{{ params.workspace }}",
        skip_on_exit_code=99,
        retries=0,
        doc_md="`dvc metrics diff` against the newest promoted tag; the gate is `promote` in params.yaml. "
        "The decision is written to reports/promotion.json in the workspace.",
    )
    promote = BashOperator(
        task_id="promote",
        bash_command="python -m pipeline promote apply",
        cwd="{{ params.workspace }}",
        doc_md="`dvc push`, commit dvc.lock and the git-tracked outputs, tag the commit `<promote.tag_prefix><n>`.",
    )
    leaves = [tasks[s.name] for s in STAGES if not any(s.name in other.upstream for other in STAGES)]
    (leaves or [refresh_data]) >> compare >> promote
