"""The CLI hides TensorFlow's CUDA probe on a machine without a GPU and says once what it runs on instead."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pipeline import __main__ as cli
from tests.workspace import REPO


@pytest.mark.parametrize(("gpu", "expected"), [(False, "3"), (True, "2")])
def test_log_level_follows_the_machine_when_unset(monkeypatch, gpu, expected):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.setattr(cli, "has_nvidia_gpu", lambda: gpu)
    cli.quiet_cuda_probe()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == expected


def test_a_level_the_user_set_is_kept(monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    monkeypatch.setattr(cli, "has_nvidia_gpu", lambda: False)
    cli.quiet_cuda_probe()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"


@pytest.mark.skipif(cli.has_nvidia_gpu(), reason="the probe succeeds on a machine with an NVIDIA GPU")
def test_a_command_that_imports_tensorflow_prints_no_cuinit_on_a_cpu_machine(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user without make runs it
    argv = [sys.executable, "-m", "pipeline", "predict", str(tmp_path / "x.jpg"), "--model", "irv2"]
    argv += ["--model-file", str(tmp_path / "missing.keras")]  # fails once TensorFlow has probed the devices
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "missing.keras" in done.stderr, done.stderr
    assert "cuInit" not in done.stderr and "device: no GPU found: running on CPU" in done.stderr, done.stderr
