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

# What git, ssh and DVC (botocore) print when origin or the DVC remote cannot be reached: the network or the service is
# down, which a later try may find up. Each was seen in that tool's output (tests/dags/test_workspaces.py). git's
# "Could not read from remote repository" alone is not here: it also follows a rejected key or a missing repository,
# which no retry fixes; the line before it (ssh's) says which. The DAG's tasks read the same list (dags/workspaces.py).
UNREACHABLE = (
    "Could not resolve host",  # git over HTTP(S), DNS
    "Failed to connect to",  # git over HTTP(S): curl's "Failed to connect to <host> port <n>"
    "Connection refused",  # git:// and ssh
    "Connection timed out",
    "Connection reset",
    "ssh: connect to host",
    "Could not connect to the endpoint URL",  # botocore's EndpointConnectionError, as DVC prints it
    "EndpointConnectionError",
    "Connect timeout",  # botocore's ConnectTimeoutError
    "Connection was closed",  # botocore's ConnectionClosedError
)
# What `git push` prints when another push got there first: a ref it updates moved, or a tag it creates now exists.
# Asking again (decide again, on what origin holds now) is the answer, as for an outage.
RACE = ("(fetch first)", "(non-fast-forward)", "(already exists)", "cannot lock ref", "(stale info)")


class ToolError(RuntimeError):
    """git or DVC exited non-zero: the message names the command and what it printed on stderr."""

    def __init__(self, command: list[str], returncode: int, stderr: str) -> None:
        super().__init__(f"{' '.join(command)} exited {returncode}: {stderr.strip()}")
        self.returncode = returncode


class Unreachable(ToolError):
    """origin or the DVC remote could not be reached, or a push lost a race: a later try may succeed."""


def transient(output: str) -> bool:
    """Whether a failed command's output says that origin or the DVC remote could not be reached, or that a push
    lost a race with another."""
    lowered = output.lower()
    return any(sign.lower() in lowered for sign in UNREACHABLE + RACE)


def _failed(command: list[str], done: subprocess.CompletedProcess) -> ToolError:
    kind = Unreachable if transient(done.stdout + done.stderr) else ToolError
    return kind(command, done.returncode, done.stderr)


def _run(command: list[str], root: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=root, input=stdin, capture_output=True, text=True)


def git(root: Path, *args: str, stdin: str | None = None, ok: tuple[int, ...] = (0,)) -> str:
    """The output of `git args` in ``root``; ToolError when it exits with a status not in ``ok``."""
    done = _run(["git", *args], root, stdin)
    if done.returncode not in ok:
        raise _failed(["git", *args], done)
    return done.stdout.strip()


def git_succeeds(root: Path, *args: str, stdin: str | None = None) -> bool:
    """Whether `git args` exits 0 (for the questions git answers with its status: diff --quiet, config)."""
    return _run(["git", *args], root, stdin).returncode == 0


def dvc(root: Path, *args: str) -> str:
    """The output of `dvc args` in ``root``, with the DVC of this interpreter, as the stages run it."""
    command = [sys.executable, "-m", "dvc", *args]
    done = _run(command, root)
    if done.returncode != 0:
        raise _failed(["dvc", *args], done)
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
