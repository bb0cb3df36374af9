"""The retraining DAG end to end (`airflow dags test`) on a cluster made of a bare git `origin`, a local DVC
remote and a folder for the tasks' temporary workspaces (tests/cluster.py). Each task clones origin at the run's
commit into its own folder and removes it when done, so a task that read another task's disk would fail. Runs in
order: the first trains everything and promotes; the second finds nothing new; a param change pushed to origin
re-executes only the stages it affects, and the new model, under the gate, is rejected loudly. Then two GPU stages
run at once against the same remote. Real DVC, real (tiny) trainings, real git pushes."""

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

FIRST_TAGS = ["irv2@v1.0.0", "irv2#prod#1", "irv2_unet@v1.0.0", "irv2_unet#prod#1"]
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
    # origin holds the promotion: a commit on main, child of the run's commit, registered and in prod (GTO tags)
    assert sorted(git(cluster.origin, "tag", "--list").split()) == sorted(FIRST_TAGS)
    for tag in FIRST_TAGS:
        assert git(cluster.origin, "rev-parse", f"{tag}^{{commit}}") == git(cluster.origin, "rev-parse", "main")
    assert git(cluster.origin, "rev-parse", "main^") == commit
    committed = git(cluster.origin, "show", "--name-only", "--format=%s", "main").splitlines()
    assert committed[0] == "Promote irv2@v1.0.0, irv2_unet@v1.0.0"
    assert {"dvc.lock", "metrics/evaluate.json", "metrics/promotion.json", "reports/promotion.md"} <= set(committed)
    message = git(cluster.origin, "tag", "--list", "--format=%(contents)", "irv2@v1.0.0")
    assert '"split": "test"' in message and '"data": ' in message and '"run_id": ' in message
    # the gate's policy came from the branch, and the environment the models were made in is recorded
    assert '"policy": "params.yaml at origin/main (commit ' in message and '"requirements.lock": "' in message
    # both verdicts of the run (compare's check, promote's apply) are on origin, outside branches and tags
    assert [ref.rsplit("/", 1)[1] for ref in cluster.verdicts()] == ["apply", "check"]
    assert all("Decision: **promote**" in cluster.verdict(ref) for ref in cluster.verdicts())


def test_a_fresh_clone_of_the_tag_pulls_everything_it_names(first, tmp_path):
    clone = first.cluster.clone(tmp_path / "clone", "irv2@v1.0.0")
    assert workspace.dvc(clone, "status", "--json").stdout.strip() in ("", "{}")
    assert workspace.dvc(clone, "status", "--cloud", "--json").stdout.strip() in ("", "{}")
    assert (clone / "models/irv2/model.keras").stat().st_size > 0
    promotion = json.loads((clone / "metrics/promotion.json").read_text())
    assert promotion["decision"] == "promote" and promotion["split"] == "test"
    assert {m["action"] for m in promotion["models"].values()} == {"promote"}
    assert "metrics/promotion.json" in workspace.dvc(clone, "metrics", "show").stdout


def test_second_run_with_nothing_new_executes_nothing_and_pushes_nothing(first):
    home, cluster = first.home, first.cluster
    heads, files, verdicts = cluster.heads(), cluster.remote_files(), cluster.verdicts()
    run = airflow_env.dags_test(home, cluster.env())
    assert run.done.returncode == 0, run.log()
    assert stage_states(run) == {"success"}, run.states
    assert set(map(tuple, executed(run).values())) == {()}, executed(run)
    assert run.states["compare"] == "skipped" and run.states["promote"] == "skipped", run.states
    assert cluster.heads() == heads and cluster.remote_files() == files
    # the one thing pushed: the skip verdict, kept like every other
    (new,) = set(cluster.verdicts()) - set(verdicts)
    assert new.endswith("/check") and "Decision: **skip**" in cluster.verdict(new)
    assert list(cluster.tasks.iterdir()) == []


def test_a_param_pushed_to_origin_reruns_its_stages_only_and_a_model_below_the_gate_is_rejected(first, tmp_path):
    """One run for two behaviours (each run costs minutes): the param change is picked up without touching a
    worker and re-executes only what it affects; the new model misses the gate, loudly."""
    home, cluster = first.home, first.cluster

    def new_irv2_under_a_high_floor(root: Path) -> None:
        raw = yaml.safe_load((root / "params.yaml").read_text())
        raw["train"]["irv2"]["dropout"] = 0.35  # read by tune@irv2 and train@irv2 only
        raw["promote"]["gate"]["macro_f1"] = 1.0  # read by no stage: a floor no model reaches
        workspace.write_params(root, raw)

    pushed = cluster.push_commit(tmp_path / "dev", "A floor too high", new_irv2_under_a_high_floor)
    heads, verdicts = cluster.heads(), cluster.verdicts()
    notified = tmp_path / "notified.txt"
    hook = {"EMOTION_ON_REJECT": "tests.dags.notify_probe:record", "EMOTION_NOTIFY_FILE": str(notified)}
    run = airflow_env.dags_test(home, {**cluster.env(), **hook, "PYTHONPATH": str(workspace.REPO)})
    assert run.done.returncode != 0  # a rejected model fails the run, visibly
    assert stage_states(run) == {"success"}, run.states
    assert run.results["resolve"] == pushed  # origin's new head, with no worker touched
    runs = executed(run)
    # the stages reading the changed param, and evaluate, which reads the new irv2 model; nothing else
    assert {task: stages for task, stages in runs.items() if stages} == {
        "tune.irv2": ["tune@irv2"],
        "train.irv2": ["train@irv2"],
        "evaluate": ["evaluate"],
    }, runs
    assert run.states["compare"] == "failed" and run.states["promote"] == "upstream_failed", run.states
    assert cluster.heads() == heads  # no new tag, no commit
    assert list(cluster.tasks.iterdir()) == []
    # the verdict is on origin, the workspace that wrote it long gone; the hook got the same report
    (new,) = set(cluster.verdicts()) - set(verdicts)
    stored = cluster.verdict(new)
    assert "## irv2: reject" in stored and f"params.yaml at origin/main (commit {pushed[:12]})" in stored
    # the deployment's hook got the failure with the report: irv2 failed its floor, irv2_unet had nothing new
    task, report = notified.read_text().split("\n", 1)
    assert task == "compare" and "## irv2: reject" in report and "## irv2_unet: skip" in report
    assert "macro_f1" in report and "floor" in report and "**FAIL**" in report
    # the champion irv2_unet@v1.0.0's figures on this Test split come from the score cache, where its promotion
    # stored what the evaluate stage scored for it (same model, code and split; that a real re-score gives the same
    # figures is tests/integration/test_evaluate_pipeline.py::test_the_gate_rescores_a_model_as_evaluate_scored_it)
    unet = report.split("## irv2_unet: skip", 1)[1]
    row = next(line for line in unet.splitlines() if line.startswith("| macro_f1 |"))
    challenger, champion = [cell.strip() for cell in row.strip("|").split("|")[1:3]]
    assert challenger == champion


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
