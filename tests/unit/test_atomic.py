"""Atomic outputs: what a killed write leaves behind is removed by the next write, and git does not show it."""

from __future__ import annotations

import subprocess

from pipeline import atomic
from tests.workspace import REPO


def test_a_killed_folder_write_is_cleaned_up_by_the_next(tmp_path):
    out = tmp_path / "balanced"
    stale = tmp_path / ".balanced.abc123.tmp"  # what a SIGKILL during `with atomic.directory(out)` leaves
    (stale / "train").mkdir(parents=True)
    (stale / "train/0001.png").write_bytes(b"half")
    other = tmp_path / ".other.abc123.tmp"
    other.mkdir()
    with atomic.directory(out) as tmp:
        (tmp / "index.csv").write_text("path\n")
    assert not stale.exists()
    assert other.exists(), "only the temporaries of the output being written are removed"
    assert (out / "index.csv").read_text() == "path\n"


def test_git_ignores_interrupted_writes():
    paths = ["data/.balanced.x1y2.tmp/train/a.png", "models/irv2/.tmp-q7-model.keras", "data/.balanced.old/a.png"]
    done = subprocess.run(["git", "check-ignore", *paths], cwd=REPO, capture_output=True, text=True, check=False)
    assert done.stdout.split() == paths
