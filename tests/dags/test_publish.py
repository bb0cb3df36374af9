"""A stage task publishes its outputs before the run-cache record naming them (dags/workspaces.py publish): a task
that dies in between leaves objects without a record, never a record without objects, and its retry completes the
remote. On the tiny cluster of tests/cluster.py, with the cheapest stage."""

from __future__ import annotations

import pytest

from tests import cluster as clusters
from tests.cluster import workspaces
from tests.run_records import missing_in_folder

pytestmark = pytest.mark.integration

STAGE = "validate"


def test_a_task_killed_before_the_run_cache_push_leaves_no_record_and_its_retry_completes_the_remote(
    tmp_path, monkeypatch
):
    cluster = clusters.make(tmp_path)
    settings = cluster.settings()
    commit = workspaces.git(None, "--git-dir", str(cluster.origin), "rev-parse", "main")
    real_dvc = workspaces.dvc

    def dying_at_the_run_cache(cwd, *args, env=None):
        if "--run-cache" in args:
            raise workspaces.TaskError("worker lost before `dvc push --run-cache`")
        return real_dvc(cwd, *args, env=env)

    before = set(cluster.remote_files())
    monkeypatch.setattr(workspaces, "dvc", dying_at_the_run_cache)
    with pytest.raises(workspaces.TaskError, match="worker lost"):
        workspaces.run_stage(settings, commit, STAGE)
    monkeypatch.undo()
    added = set(cluster.remote_files()) - before
    assert not (cluster.remote / "runs").exists(), added
    # the stage's objects are there: the cached outputs (data/manifest.csv, reports/validation.html) and the
    # uncached metrics file, three objects in all
    assert len(added) == 3 and all(p.startswith("files/md5/") for p in added), added

    # the retry, on a healthy worker
    done = workspaces.run_stage(settings, commit, STAGE)
    assert done["executed"] == [STAGE]
    records = [p for p in cluster.remote_files() if p.startswith("runs/")]
    assert len(records) == 1, records  # runs/<2 chars>/<stage key>/<record>
    assert len(records[0].split("/")) == 4 and records[0].split("/")[2].startswith(records[0].split("/")[1])
    assert missing_in_folder(cluster.remote) == []
    assert list(cluster.tasks.iterdir()) == []
    # a third task restores the stage from that record instead of running it
    with workspaces.workspace(settings, "check", commit) as root:
        assert workspaces.reproduce(root, STAGE) == []


def test_missing_run_objects_names_a_record_whose_output_is_gone():
    record = "runs/ab/abcd/ef01"
    outs = (
        "outs:\n- path: data/manifest.csv\n  hash: md5\n  md5: 1234567890abcdef\n"
        "- path: plots\n  hash: md5\n  md5: 99887766.dir\n"
    )
    listing = {
        record: outs.encode(),
        "files/md5/12/34567890abcdef": b"",
        "files/md5/99/887766.dir": b'[{"md5": "aa11", "relpath": "a.json"}, {"md5": "bb22", "relpath": "b.json"}]',
        "files/md5/aa/11": b"",
    }
    from tests.run_records import missing_run_objects

    assert missing_run_objects(listing, listing.__getitem__) == [f"{record}: plots/b.json (files/md5/bb/22)"]
    del listing["files/md5/12/34567890abcdef"]
    assert missing_run_objects(listing, listing.__getitem__)[0] == (
        f"{record}: data/manifest.csv (files/md5/12/34567890abcdef)"
    )
