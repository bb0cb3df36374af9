"""The images and the cluster, checked without a Docker engine: hadolint on every Dockerfile (warnings fail), the
compose file against the Compose Specification schema that check-jsonschema ships, and the properties the DAG relies
on (a GPU worker on the `gpu` queue with an NVIDIA reservation, the workspace pool, one workspace for all)."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests import workspace

DOCKER = workspace.REPO / "docker"
BIN = Path(sys.executable).parent
COMPOSE = DOCKER / "compose.yaml"
AIRFLOW_SERVICES = [
    "airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
    "airflow-worker", "airflow-worker-gpu",
]  # fmt: skip


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())  # safe_load resolves the `<<:` merge keys, as Compose does


@pytest.mark.parametrize("name", ["Dockerfile.cpu", "Dockerfile.gpu", "Dockerfile.airflow"])
def test_dockerfile_passes_hadolint(name):
    done = run(str(BIN / "hadolint"), "--failure-threshold", "warning", str(DOCKER / name))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("name", ["Dockerfile.cpu", "Dockerfile.gpu", "Dockerfile.airflow"])
def test_images_install_the_lock_and_the_pipeline(name):
    text = (DOCKER / name).read_text()
    assert "-r requirements.lock" in text and "--no-deps ." in text
    # the build context is the repository root: an ignore file beside the Dockerfile keeps .venv and data out
    ignore = (DOCKER / f"{name}.dockerignore").read_text().splitlines()
    assert "*" in ignore and "!pipeline" in ignore


def test_compose_file_matches_the_compose_specification():
    done = run(str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_check_catches_a_broken_compose_file(tmp_path):
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("capabilities: [gpu]", "capabilities: gpu"))
    done = run(str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(broken))
    assert done.returncode != 0 and "capabilities" in done.stdout


def test_cluster_has_every_airflow_component(compose):
    services = compose["services"]
    assert {"postgres", "redis", *AIRFLOW_SERVICES} <= set(services)
    commands = {name: shlex.split(services[name]["command"]) for name in AIRFLOW_SERVICES if name != "airflow-init"}
    assert commands["airflow-apiserver"] == ["api-server"]
    assert commands["airflow-scheduler"] == ["scheduler"]
    assert commands["airflow-dag-processor"] == ["dag-processor"]
    assert commands["airflow-triggerer"] == ["triggerer"]
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["EMOTION_WORKSPACE"] == "/workspace" and env["AIRFLOW__CORE__DAGS_FOLDER"] == "/workspace/dags"
        targets = [v.split(":")[-1] for v in services[name]["volumes"]]
        assert "/workspace" in targets and "/dvc-remote" in targets, name


def test_gpu_worker_takes_the_gpu_queue_on_an_nvidia_device(compose):
    worker = compose["services"]["airflow-worker-gpu"]
    command = shlex.split(worker["command"])
    assert command[:2] == ["celery", "worker"] and command[command.index("--queues") + 1] == "gpu"
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert worker["build"]["args"]["TENSORFLOW_EXTRAS"] == "and-cuda"
    cpu = shlex.split(compose["services"]["airflow-worker"]["command"])
    assert cpu[cpu.index("--queues") + 1] == "default"


def test_init_creates_the_one_slot_workspace_pool(compose):
    script = compose["services"]["airflow-init"]["command"][-1]
    assert "airflow db migrate" in script
    assert 'airflow pools set dvc_workspace 1 "' in script  # the pool every DVC task of the DAG takes


def test_airflow_image_has_the_celery_provider_dvc_and_git():
    text = (DOCKER / "Dockerfile.airflow").read_text()
    assert text.splitlines()[3] == "ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11"
    assert "apache-airflow-providers-celery==" in text
    assert "install -y --no-install-recommends git" in text
    assert "dvc==" in (workspace.REPO / "requirements.lock").read_text()  # DVC comes with the lock
