"""A retraining cluster on disk for the DAG tests: a bare git repository as `origin`, a local folder as the DVC remote,
and a folder under which every task makes (and must remove) its temporary workspace. No Docker, no network."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from tests import workspace

sys.path.insert(0, str(workspace.REPO / "dags"))
import workspaces  # noqa: E402 (the DAG's helper module, importable as Airflow makes it)


@dataclass(frozen=True)
class Cluster:
    origin: Path  # bare git repository
    remote: Path  # the DVC remote
    tasks: Path  # EMOTION_WORKDIR: the tasks' temporary workspaces live (briefly) here
    dag_source: Path  # EMOTION_PIPELINE_DIR: the dvc.yaml and params.yaml (test profile) the DAG is parsed from

    def env(self, branch: str = "main") -> dict[str, str]:
        return {
            "EMOTION_GIT_REMOTE": str(self.origin),
            "EMOTION_GIT_BRANCH": branch,
            "EMOTION_DVC_REMOTE": str(self.remote),
            "EMOTION_WORKDIR": str(self.tasks),
            "EMOTION_PIPELINE_DIR": str(self.dag_source),
        }

    def settings(self, branch: str = "main") -> workspaces.Settings:
        return workspaces.Settings(str(self.origin), branch, dvc_remote=str(self.remote), workdir=str(self.tasks))

    def clone(self, dest: Path, ref: str = "main") -> Path:
        """A fresh clone of origin at ``ref`` with its DVC outputs pulled, as a newcomer would make it."""
        workspace.sh(dest.parent, "git", "clone", "-q", str(self.origin), dest.name)
        workspace.sh(dest, "git", "checkout", "-q", ref)
        workspace.dvc(dest, "pull", "-q")
        return dest

    def heads(self) -> str:
        """Every branch and tag of origin with its commit (not the gate's stored verdicts: see verdicts)."""
        return workspace.sh(self.origin, "git", "show-ref", "--heads", "--tags").stdout

    def verdicts(self) -> list[str]:
        """The refs of the gate's verdicts that origin holds (refs/verdicts/<run>/<check|apply>)."""
        return workspace.sh(self.origin, "git", "for-each-ref", "--format=%(refname)", "refs/verdicts").stdout.split()

    def verdict(self, ref: str, name: str = "promotion.md") -> str:
        """A file of a stored verdict, read from origin: no workspace of the run is needed."""
        return workspace.sh(self.origin, "git", "show", f"{ref}:{name}").stdout

    def remote_files(self) -> list[str]:
        return sorted(str(p.relative_to(self.remote)) for p in self.remote.rglob("*") if p.is_file())

    def push_commit(self, dest: Path, message: str, change, branch: str = "main") -> str:
        """Clone origin to ``dest``, apply ``change(dest)``, commit and push to ``branch``; returns the commit."""
        workspace.sh(dest.parent, "git", "clone", "-q", str(self.origin), dest.name)
        change(dest)
        workspace.sh(dest, "git", "commit", "-qam", message)
        workspace.sh(dest, "git", "push", "-q", "origin", f"HEAD:refs/heads/{branch}")
        return workspace.sh(dest, "git", "rev-parse", "HEAD").stdout.strip()


def make(base: Path, overrides: dict | None = None) -> Cluster:
    """A workspace (tests.workspace.make) pushed to a new origin and DVC remote; the workspace is then deleted, so
    nothing can read it: origin and the remote are all a run has."""
    ws = workspace.make(base / "seed", overrides)
    remote = base / "dvc-remote"
    workspace.dvc(ws, "remote", "add", "--force", "-d", "local", str(remote))
    workspace.sh(ws, "git", "commit", "-qam", "DVC remote of the cluster")
    workspace.dvc(ws, "push", "-q")
    dag_source = base / "dag-source"
    dag_source.mkdir()
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ws / name, dag_source / name)
    origin = base / "origin.git"
    workspace.sh(base, "git", "clone", "-q", "--bare", str(ws), origin.name)
    shutil.rmtree(ws)
    shutil.rmtree(base / "seed-remote", ignore_errors=True)
    tasks = base / "tasks"
    tasks.mkdir()
    return Cluster(origin, remote, tasks, dag_source)
