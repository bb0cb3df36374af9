"""The DAG's workspaces (dags/workspaces.py) on a small repository, no Airflow: `resolve` commits updated imports to
origin's branch so that every task of the run sees the same data; a pinned ref is taken as it is."""

from __future__ import annotations

import pytest

from tests import workspace
from tests.cluster import workspaces


@pytest.fixture
def origin_with_an_import(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "a.txt").write_text("first\n")
    seed = tmp_path / "seed"
    seed.mkdir()
    workspace.sh(seed, "git", "init", "-q", "-b", "main")
    workspace.dvc(seed, "init", "-q")
    workspace.dvc(seed, "remote", "add", "-d", "store", str(tmp_path / "dvc-remote"))
    (seed / "data").mkdir()
    workspace.dvc(seed, "import-url", "-q", str(source), "data/ext")  # data from outside the repository
    workspace.dvc(seed, "push", "-q")
    workspace.sh(seed, "git", "add", "-A")
    workspace.sh(seed, "git", "commit", "-qm", "import")
    workspace.sh(tmp_path, "git", "clone", "-q", "--bare", str(seed), "origin.git")
    settings = workspaces.Settings(str(tmp_path / "origin.git"), "main", workdir=str(tmp_path / "tasks"))
    (tmp_path / "tasks").mkdir()
    return settings, source, tmp_path


def head(settings) -> str:
    return workspace.sh(workspace.REPO, "git", "ls-remote", settings.git_remote, "refs/heads/main").stdout.split()[0]


def test_resolve_commits_changed_imports_to_the_branch(origin_with_an_import):
    settings, source, base = origin_with_an_import
    before = head(settings)
    expected: list[str] = []  # no dvc.yaml here: no pipeline stages
    assert workspaces.resolve(settings, "", expected) == before  # nothing changed: the head as it is
    (source / "a.txt").write_text("second\n")
    commit = workspaces.resolve(settings, "", expected)
    assert commit != before and head(settings) == commit
    clone = base / "clone"
    workspace.sh(base, "git", "clone", "-q", settings.git_remote, "clone")
    assert "Update imported data: data/ext.dvc" in workspace.sh(clone, "git", "log", "-1", "--format=%s").stdout
    workspace.dvc(clone, "pull", "-q")  # the new data reached the DVC remote before the commit reached origin
    assert (clone / "data/ext/a.txt").read_text() == "second\n"
    assert list((base / "tasks").iterdir()) == []
    # a pinned ref is taken as it is, imports untouched
    assert workspaces.resolve(settings, before, expected) == before
    with pytest.raises(workspaces.TaskError, match="is not a branch, tag or commit"):
        workspaces.resolve(settings, "no-such-branch", expected)
