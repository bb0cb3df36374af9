"""The images and the cluster, checked without a Docker engine: hadolint on every Dockerfile (warnings fail), the
compose file against the Compose Specification schema that check-jsonschema ships, and the properties the DAG relies
on (a GPU worker on the `gpu` queue with an NVIDIA reservation, the GPU pool, MinIO as the DVC remote, no mounted
checkout, every secret required, a healthcheck on every long-running service, the UI on loopback only)."""

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
    lock = {"Dockerfile.cpu": "-r requirements.lock", "Dockerfile.gpu": "-r requirements-gpu.lock"}
    assert lock.get(name, '-r "${LOCK}"') in text and "--no-deps ." in text
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
        # no checkout is mounted: tasks clone the git remote, and the DVC remote is MinIO
        assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/emotion/dags" and "EMOTION_WORKSPACE" not in env
        assert (
            env["EMOTION_DVC_REMOTE"].startswith("s3://") and env["EMOTION_DVC_REMOTE_ENDPOINT"] == "http://minio:9000"
        )
        assert [v.split(":")[-1] for v in services[name]["volumes"]] == ["/opt/airflow/logs"], name


def test_every_secret_is_required_and_has_no_default():
    text = COMPOSE.read_text()
    secrets = ["POSTGRES_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_SECRET_KEY"]
    secrets += ["MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "EMOTION_GIT_REMOTE", "EMOTION_GIT_SSH_KEY_FILE"]
    for var in secrets:
        uses = [line for line in text.splitlines() if "${" + var in line]
        assert uses and all("${" + var + ":?" in line for line in uses), var
    assert "change-me" not in text and "airflow:airflow@" not in text


def test_every_long_running_service_has_a_healthcheck_and_the_ui_is_on_loopback(compose):
    services = compose["services"]
    for name, service in services.items():
        if service.get("restart") == "always":
            assert "healthcheck" in service, name
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)


def test_minio_is_the_dvc_remote_with_its_bucket_created_at_start(compose):
    services = compose["services"]
    assert (
        "minio" in services and "mc mb --ignore-existing cluster/emotion-dvc" in services["minio-init"]["command"][-1]
    )
    for name in AIRFLOW_SERVICES:
        assert services[name]["depends_on"]["minio-init"]["condition"] == "service_completed_successfully", name


def test_gpu_worker_takes_the_gpu_queue_on_an_nvidia_device(compose):
    worker = compose["services"]["airflow-worker-gpu"]
    command = shlex.split(worker["command"])
    assert command[:2] == ["celery", "worker"] and command[command.index("--queues") + 1] == "gpu"
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert worker["build"]["args"]["LOCK"] == "requirements-gpu.lock"
    cpu = shlex.split(compose["services"]["airflow-worker"]["command"])
    assert cpu[cpu.index("--queues") + 1] == "default"


def test_init_creates_the_gpu_pool(compose):
    script = compose["services"]["airflow-init"]["command"][-1]
    assert "airflow db migrate" in script
    assert 'airflow pools set emotion_gpu "$${EMOTION_GPU_SLOTS}"' in COMPOSE.read_text()  # the GPU stages' pool


def test_airflow_image_has_the_celery_provider_dvc_and_git():
    text = (DOCKER / "Dockerfile.airflow").read_text()
    assert "ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11" in text.splitlines()
    assert "apache-airflow-providers-celery==" in text
    assert "install -y --no-install-recommends git" in text
    lock = (workspace.REPO / "requirements.lock").read_text()
    assert "dvc==" in lock and "dvc-s3==" in lock and "dvc-ssh==" in lock  # DVC and its remotes come with the lock
    gpu = (workspace.REPO / "requirements-gpu.lock").read_text()
    assert "nvidia-cudnn-cu12==" in gpu and "nvidia-cublas-cu12==" in gpu  # the CUDA wheels, pinned
