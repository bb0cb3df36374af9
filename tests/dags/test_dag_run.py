"""The retraining DAG end to end (`airflow dags test`) on a cluster made of a bare git `origin`, a local DVC
remote and a folder for the tasks' temporary workspaces (tests/cluster.py). Each task clones origin at the run's
commit into its own folder and removes it when done, so a task that read another task's disk would fail. Runs in
order: the first trains everything and promotes; the second finds nothing new; a param change pushed to origin
re-executes only the stage that reads it; a better production model blocks a promotion. Then two GPU stages run at
once against the same remote. Real DVC, real (tiny) trainings, real git pushes."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from tests import workspace
from tests.cluster import workspaces
from tests.dags import airflow_env

pytestmark = pytest.mark.integration

GATED = "metrics/train/irv2.json"
NOT_STAGES = ("resolve", "compare", "promote")


@pytest.fixture(scope="module")
def first(retraining_run):
    """The session's first DAG run (tests/conftest.py); the tests below go on running the DAG on its cluster."""
    assert retraining_run.run.done.returncode == 0, retraining_run.run.log()
    return retraining_run


def git(cwd: Path, *args: str) -> str:
    return workspace.sh(cwd, "git", *args).stdout.strip()


def executed(run: airflow_env.DagRun) -> dict[str, list[str]]:
    """Each stage task's stages that DVC executed (the rest were restored from the DVC remote)."""
    return {task: result["executed"] for task, result in run.results.items() if task not in NOT_STAGES}


def stage_states(run: airflow_env.DagRun) -> set[str]:
    return {state for task, state in run.states.items() if task not in NOT_STAGES}


def test_first_run_executes_each_stage_once_in_its_own_workspace_and_promotes(first):
    run, cluster = first.run, first.cluster
    assert set(run.states.values()) == {"success"}, run.states
    commit = run.results["resolve"]
    runs = executed(run)
    # each stage task executed its own stage and restored every upstream one from the run-cache
    assert runs and all(stages == [run.results[task]["stage"]] for task, stages in runs.items()), runs
    assert {r["commit"] for t, r in run.results.items() if t not in NOT_STAGES} == {commit}
    assert list(cluster.tasks.iterdir()) == []  # every task removed its workspace
    # origin holds the promotion: a commit on main, child of the run's commit, tagged model-1
    assert git(cluster.origin, "tag", "--list") == "model-1"
    assert git(cluster.origin, "rev-parse", "main") == git(cluster.origin, "rev-parse", "model-1^{commit}")
    assert git(cluster.origin, "rev-parse", "main^") == commit
    committed = git(cluster.origin, "show", "--name-only", "--format=%s", "main").splitlines()
    assert committed[0] == "Promote model-1"
    assert {"dvc.lock", GATED, "metrics/train/irv2_unet.json", "metrics/evaluate.json"} <= set(committed)


def test_a_fresh_clone_of_the_tag_pulls_everything_it_names(first, tmp_path):
    clone = first.cluster.clone(tmp_path / "clone", "model-1")
    assert workspace.dvc(clone, "status", "--json").stdout.strip() in ("", "{}")
    assert workspace.dvc(clone, "status", "--cloud", "--json").stdout.strip() in ("", "{}")
    assert (clone / "models/irv2/model.keras").stat().st_size > 0
    assert json.loads((clone / "reports/promotion.json").read_text())["action"] == "promote"


def test_second_run_with_nothing_new_executes_nothing_and_pushes_nothing(first):
    home, cluster = first.home, first.cluster
    heads, files = cluster.heads(), cluster.remote_files()
    run = airflow_env.dags_test(home, cluster.env())
    assert run.done.returncode == 0, run.log()
    assert stage_states(run) == {"success"}, run.states
    assert set(map(tuple, executed(run).values())) == {()}, executed(run)
    assert run.states["compare"] == "skipped" and run.states["promote"] == "skipped", run.states
    assert cluster.heads() == heads and cluster.remote_files() == files
    assert list(cluster.tasks.iterdir()) == []


def test_a_param_pushed_to_origin_reruns_only_the_stages_that_read_it(first, tmp_path):
    home, cluster = first.home, first.cluster

    def fewer_gradcam_images(root: Path) -> None:
        raw = yaml.safe_load((root / "params.yaml").read_text())
        raw["evaluate"]["gradcam_per_class"] = 1
        workspace.write_params(root, raw)

    pushed = cluster.push_commit(tmp_path / "dev", "Fewer Grad-CAM images", fewer_gradcam_images)
    run = airflow_env.dags_test(home, cluster.env())  # no worker touched: the run resolves origin's head
    assert run.done.returncode == 0, run.log()
    assert run.results["resolve"] == pushed
    runs = executed(run)
    assert runs.pop("evaluate") == ["evaluate"]
    assert set(map(tuple, runs.values())) == {()}, runs
    assert run.states["promote"] == "success", run.states
    assert git(cluster.origin, "tag", "--list").split() == ["model-1", "model-2"]
    assert git(cluster.origin, "rev-parse", "main^") == pushed


def test_a_model_worse_than_production_is_not_promoted(first, tmp_path):
    home, cluster = first.home, first.cluster
    # Production moved on: a later promoted commit (model-3) whose model scored higher. Simulated in git history only;
    # the branch then returns to its real trained model and metrics.
    dev = tmp_path / "dev"
    real = {}

    def better(root: Path) -> None:
        real["text"] = (root / GATED).read_text()
        metrics = json.loads(real["text"])
        assert metrics["val"]["macro_f1"] < 0.9, "the tiny model is unexpectedly good: the simulated drop would vanish"
        metrics["val"]["macro_f1"] = 1.0
        (root / GATED).write_text(json.dumps(metrics, indent=2))

    cluster.push_commit(dev, "A better production model", better)
    git(dev, "tag", "model-3")
    (dev / GATED).write_text(real["text"])
    git(dev, "commit", "-qam", "Back to the branch's own model")
    git(dev, "push", "-q", "--atomic", "origin", "HEAD:refs/heads/main", "refs/tags/model-3")
    heads = cluster.heads()

    run = airflow_env.dags_test(home, cluster.env())
    assert run.done.returncode != 0  # a rejected model fails the run, visibly
    assert stage_states(run) == {"success"}, run.states
    assert set(map(tuple, executed(run).values())) == {()}, executed(run)
    assert run.states["compare"] == "failed" and run.states["promote"] == "upstream_failed", run.states
    assert cluster.heads() == heads  # no new tag, no commit
    assert "DROP" in run.log() and "worse than model-3" in run.log()


def test_two_gpu_stages_run_at_once_in_two_workspaces_against_one_remote(first, tmp_path):
    cluster = first.cluster

    def new_search_space(root: Path) -> None:
        raw = yaml.safe_load((root / "params.yaml").read_text())
        raw["tune"]["space"]["head_units"] = {"choice": [8, 12]}
        workspace.write_params(root, raw)

    commit = cluster.push_commit(tmp_path / "dev", "Another search space", new_search_space, branch="search")
    settings = cluster.settings("search")
    # the gate restores, never executes: with both searches missing from the run-cache it refuses to go on
    with pytest.raises(workspaces.TaskError, match="was about to execute in a task that runs no stage"):
        workspaces.gate(settings, commit, "check")

    def timed(stage: str) -> tuple[dict, float, float]:
        start = time.monotonic()
        done = workspaces.run_stage(settings, commit, stage)
        return done, start, time.monotonic()

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(timed, ["tune@irv2", "tune@irv2_unet"]))
    (a, a_start, a_end), (b, b_start, b_end) = results
    assert a["executed"] == ["tune@irv2"] and b["executed"] == ["tune@irv2_unet"]
    assert a_start < b_end and b_start < a_end  # they overlapped
    assert list(cluster.tasks.iterdir()) == []
    # both searches reached the remote's run-cache: a third workspace restores them without executing
    with workspaces.workspace(settings, "check", commit) as root:
        assert workspaces.reproduce(root, "tune@irv2_unet") == []
        assert json.loads((root / "models/irv2_unet/hparams.json").read_text())["head_units"] in (8, 12)
