"""The guard of the retraining tasks (pipeline/__main__.py): under DVC (DVC_STAGE set) a task that names the one stage
it may execute (EMOTION_EXECUTE) refuses every other stage before any heavy import; outside such a task, nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipeline.__main__ import refuse_unwanted_stage
from tests import workspace


@pytest.mark.parametrize(
    ("allowed", "stage", "refused"),
    [
        (None, "validate", False),  # a plain `dvc repro`
        ("validate", None, False),  # the CLI outside DVC (promote, predict)
        ("train@irv2", "train@irv2", False),
        ("train@irv2", "augment", True),
        ("none", "evaluate", True),
    ],
)
def test_only_the_named_stage_may_execute(monkeypatch, allowed, stage, refused):
    for name, value in (("EMOTION_EXECUTE", allowed), ("DVC_STAGE", stage)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    message = refuse_unwanted_stage()
    assert (message is not None) == refused
    if refused:
        assert stage in message and "run-cache" in message


def test_the_cli_exits_with_the_message_before_running_anything(tmp_path):
    env = {**workspace.env(), "EMOTION_EXECUTE": "none", "DVC_STAGE": "validate"}
    cmd = [sys.executable, "-m", "pipeline", "validate", "--raw", str(tmp_path / "nothing")]
    done = subprocess.run(cmd, cwd=workspace.REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "stage validate was about to execute in a task that runs no stage" in done.stderr
