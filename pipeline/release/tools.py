"""git, DVC and GTO for the registry and the gate: the one place that runs them, with one git identity and one error.

The Airflow DAG keeps its own small copy (dags/workspaces.py): it is parsed by the scheduler, which must not import
the pipeline package and its ML dependencies.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# who commits and tags where git has no identity configured (a fresh worker); GIT_AUTHOR_* / GIT_COMMITTER_* in the
# environment outrank it, as they outrank any git config
NAME, EMAIL = "emotion-retraining", "retraining@localhost"


class ToolError(RuntimeError):
    """git or DVC exited non-zero: the message names the command and what it printed on stderr."""

    def __init__(self, command: list[str], returncode: int, stderr: str) -> None:
        super().__init__(f"{' '.join(command)} exited {returncode}: {stderr.strip()}")
        self.returncode = returncode


def _run(command: list[str], root: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=root, input=stdin, capture_output=True, text=True)


def git(root: Path, *args: str, stdin: str | None = None, ok: tuple[int, ...] = (0,)) -> str:
    """The output of `git args` in ``root``; ToolError when it exits with a status not in ``ok``."""
    done = _run(["git", *args], root, stdin)
    if done.returncode not in ok:
        raise ToolError(["git", *args], done.returncode, done.stderr)
    return done.stdout.strip()


def git_succeeds(root: Path, *args: str, stdin: str | None = None) -> bool:
    """Whether `git args` exits 0 (for the questions git answers with its status: diff --quiet, config)."""
    return _run(["git", *args], root, stdin).returncode == 0


def dvc(root: Path, *args: str) -> str:
    """The output of `dvc args` in ``root``, with the DVC of this interpreter, as the stages run it."""
    command = [sys.executable, "-m", "dvc", *args]
    done = _run(command, root)
    if done.returncode != 0:
        raise ToolError(["dvc", *args], done.returncode, done.stderr)
    return done.stdout.strip()


def identity(root: Path) -> list[str]:
    """git options that give a commit an author where ``root`` has no identity configured (else none)."""
    return (
        [] if git_succeeds(root, "config", "user.email") else ["-c", f"user.name={NAME}", "-c", f"user.email={EMAIL}"]
    )


def tagger() -> dict[str, str]:
    """GTO's author arguments for a tag: the worker's git identity from the environment, as for the commit."""
    return {
        "author": os.environ.get("GIT_COMMITTER_NAME") or NAME,
        "author_email": os.environ.get("GIT_COMMITTER_EMAIL") or EMAIL,
    }


def output_hash(root: Path, path: str, rev: str | None = None) -> str | None:
    """The hash DVC records for ``path`` (an output of dvc.lock or a .dvc file) at git revision ``rev`` (None: the
    workspace), read through DVC's file system; None where DVC does not track it there."""
    from dvc.api import DVCFileSystem  # heavy; only the gate asks

    try:
        info = DVCFileSystem(str(root), rev=rev).info(path)
    except FileNotFoundError:
        return None
    return (info.get("dvc_info") or {}).get("md5")
