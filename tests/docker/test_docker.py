"""The images and the cluster, checked without a Docker engine: hadolint on every Dockerfile (warnings fail), the
compose file against the Compose Specification schema that check-jsonschema ships, and the properties the DAG relies
on (GPU workers on the `gpu` queue pinned to their devices, the GPU pool, MinIO as the DVC remote seeded before any
Airflow component starts, no mounted checkout, git over SSH with a pinned host key, every address a variable, every
secret required, a healthcheck on every long-running service, nothing published beyond loopback unless asked), and
the Helm values' structure (no helm here: the chart never renders them in these tests)."""

from __future__ import annotations

import re
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
HELM_VALUES = DOCKER / "helm" / "values.yaml"
GPU_WORKERS = ["airflow-worker-gpu", "airflow-worker-gpu-1"]
WORKERS = ["airflow-worker", *GPU_WORKERS]
AIRFLOW_SERVICES = [
    "airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", *WORKERS,
]  # fmt: skip
GRACE_S = 30 * 60  # the workers' stop_grace_period: Celery's warm shutdown lets a running stage finish


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
        assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "${AIRFLOW_DAGS_FOLDER:-/opt/emotion/dags}"
        assert "EMOTION_WORKSPACE" not in env
        assert env["EMOTION_DVC_REMOTE"].startswith("${EMOTION_DVC_REMOTE:-s3://")
        assert env["EMOTION_DVC_REMOTE_ENDPOINT"] == "${EMOTION_DVC_REMOTE_ENDPOINT:-http://minio:9000}"
        # task logs live in the bucket; the only volume is the component's own log folder
        assert [v.split(":")[-1] for v in services[name]["volumes"]] == ["/opt/airflow/logs"], name


def test_every_secret_is_required_and_has_no_default():
    text = COMPOSE.read_text()
    secrets = ["POSTGRES_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_SECRET_KEY"]
    secrets += ["MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "EMOTION_GIT_REMOTE", "EMOTION_GIT_SSH_KEY_FILE"]
    secrets += ["EMOTION_GIT_KNOWN_HOSTS_FILE"]
    for var in secrets:
        uses = [line for line in text.splitlines() if "${" + var in line]
        assert uses and all("${" + var + ":?" in line for line in uses), var
    assert "change-me" not in text and "airflow:airflow@" not in text


def test_every_long_running_service_has_a_healthcheck_and_publishes_on_loopback_unless_asked(compose):
    services = compose["services"]
    published = {}
    for name, service in services.items():
        if service.get("restart") == "always":
            assert "healthcheck" in service, name
        for port in service.get("ports", []):
            address, host_port, _ = str(port).rsplit(":", 2)
            assert address in ("127.0.0.1", "${EMOTION_PUBLISH_ADDR:-127.0.0.1}"), (name, port)
            if address != "127.0.0.1":
                published[name] = int(host_port)
    # what a second host needs, and nothing else (MinIO's console stays on loopback)
    assert published == {"postgres": 5432, "redis": 6379, "minio": 9000, "airflow-apiserver": 8080}


def test_every_address_in_the_airflow_environment_is_a_variable(compose):
    env = compose["x-airflow-common"]["environment"]
    assert all(isinstance(value, str) for value in env.values())  # plain strings: the local harness reads them
    for key, value in env.items():
        outside = re.sub(r"\$\{[A-Z_]+:-[^}]*\}", "${}", value)  # a `${VAR:-default}`'s default is fine
        if "://" not in value:
            continue
        hosts = re.findall(r"@([^:/${}]+)", outside) + re.findall(r"://(?![^/]*@)([^:/${}\"]+)", outside)
        assert not hosts, (key, hosts)
    for var in ["POSTGRES_HOST", "POSTGRES_PORT", "REDIS_HOST", "REDIS_PORT", "AIRFLOW_APISERVER_HOST"]:
        assert any("${" + var + ":-" in value for value in env.values()), var


def test_task_logs_go_to_the_log_bucket_and_the_rejection_hook_is_passed(compose):
    env = compose["x-airflow-common"]["environment"]
    assert env["AIRFLOW__LOGGING__REMOTE_LOGGING"] == "true"
    assert env["AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER"] == "${EMOTION_LOG_FOLDER:-s3://emotion-logs/airflow}"
    assert env["AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID"] == "emotion_logs" and "AIRFLOW_CONN_EMOTION_LOGS" in env
    assert env["EMOTION_ON_REJECT"] == "${EMOTION_ON_REJECT:-}"
    assert "mc mb --ignore-existing cluster/emotion-logs" in compose["services"]["minio-init"]["command"][-1]


def test_git_over_ssh_finds_the_key_and_the_pinned_host_key_in_the_airflow_home(compose):
    for name in [*AIRFLOW_SERVICES, "dvc-seed"]:
        service = compose["services"][name]
        assert service["secrets"] == ["git_ssh_key", "git_known_hosts"], name
        assert "StrictHostKeyChecking=yes" in service["environment"]["GIT_SSH_COMMAND"], name
    assert set(compose["secrets"]) == {"git_ssh_key", "git_known_hosts"}
    # the image's entrypoint copies them from /run/secrets into the airflow user's ~/.ssh, then runs the official one
    dockerfile = (DOCKER / "Dockerfile.airflow").read_text()
    assert 'ENTRYPOINT ["/usr/bin/dumb-init", "--", "/usr/local/bin/emotion-entrypoint"]' in dockerfile
    assert "COPY --chmod=0755 docker/airflow-entrypoint.sh /usr/local/bin/emotion-entrypoint" in dockerfile
    script = (DOCKER / "airflow-entrypoint.sh").read_text()
    assert "ssh_dir=/home/airflow/.ssh" in script
    assert "install_secret git_ssh_key id_ed25519 0600" in script
    assert "install_secret git_known_hosts known_hosts 0644" in script
    assert script.rstrip().endswith('exec /entrypoint "$@"')
    assert "StrictHostKeyChecking=no" not in COMPOSE.read_text() + script


def test_the_entrypoint_installs_the_ssh_files_with_ssh_modes(tmp_path):
    secrets, home = tmp_path / "secrets", tmp_path / "home"
    secrets.mkdir()
    (secrets / "git_ssh_key").write_text("KEY\n")
    (secrets / "git_ssh_key").chmod(0o644)  # a bind mount keeps the host's mode, which ssh refuses for a key
    (secrets / "git_known_hosts").write_text("git.example.com ssh-ed25519 AAAA\n")
    script = (DOCKER / "airflow-entrypoint.sh").read_text()
    script = script.replace("/run/secrets/", f"{secrets}/").replace("/home/airflow/.ssh", str(home / ".ssh"))
    script = script.replace('exec /entrypoint "$@"', 'echo "ran $*"')
    done = subprocess.run(["bash", "-c", script, "entrypoint", "celery", "worker"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == "ran celery worker\n", done.stderr
    assert (home / ".ssh").stat().st_mode & 0o777 == 0o700
    assert (home / ".ssh" / "id_ed25519").stat().st_mode & 0o777 == 0o600
    assert (home / ".ssh" / "known_hosts").stat().st_mode & 0o777 == 0o644


def test_minio_is_the_dvc_remote_with_its_bucket_created_at_start(compose):
    services = compose["services"]
    assert (
        "minio" in services and "mc mb --ignore-existing cluster/emotion-dvc" in services["minio-init"]["command"][-1]
    )
    for name in AIRFLOW_SERVICES:
        assert services[name]["depends_on"]["minio-init"]["condition"] == "service_completed_successfully", name


def test_the_dvc_remote_is_seeded_before_any_airflow_component_starts(compose):
    services = compose["services"]
    seed = services["dvc-seed"]
    assert seed["command"] == ["bash", "/opt/emotion/docker/seed-remote.sh"] and seed["restart"] == "no"
    assert seed["depends_on"] == {"minio-init": {"condition": "service_completed_successfully"}}
    assert seed["environment"]["EMOTION_GIT_REMOTE"].startswith("${EMOTION_GIT_REMOTE:?")
    for name in AIRFLOW_SERVICES:
        assert services[name]["depends_on"]["dvc-seed"]["condition"] == "service_completed_successfully", name
    script = DOCKER / "seed-remote.sh"
    assert script.stat().st_mode & 0o111 and "set -euo pipefail" in script.read_text()
    assert "dvc push" in script.read_text()
    assert (
        "COPY --chown=50000:0 --chmod=0755 docker/seed-remote.sh ./docker/"
        in (DOCKER / "Dockerfile.airflow").read_text()
    )
    assert "!docker/seed-remote.sh" in (DOCKER / "Dockerfile.airflow.dockerignore").read_text().splitlines()
    makefile = (workspace.REPO / "Makefile").read_text()
    assert "seed-remote: setup\n\tbash docker/seed-remote.sh" in makefile


def test_gpu_workers_take_the_gpu_queue_pinned_to_their_devices(compose):
    for name in GPU_WORKERS:
        worker = compose["services"][name]
        command = shlex.split(worker["command"])
        assert command[:2] == ["celery", "worker"] and command[command.index("--queues") + 1] == "gpu"
        (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and "gpu" in device["capabilities"] and "count" not in device, name
        ids = device["device_ids"]
        assert ids and all(isinstance(i, str) and i.isdigit() for i in ids), name
        # the reserved GPUs are numbered from 0 inside the container; one task slot per GPU
        env = worker["environment"]
        assert env["EMOTION_GPU_DEVICES"] == ",".join(str(i) for i in range(len(ids))), name
        assert command[command.index("--concurrency") + 1] == str(len(ids)), name
        assert "NVIDIA_VISIBLE_DEVICES" not in env, name  # the reservation alone decides
        assert worker["build"]["args"]["LOCK"] == "requirements-gpu.lock"
    host_ids = [i for n in GPU_WORKERS for d in compose["services"][n]["deploy"]["resources"]["reservations"]["devices"]
                for i in d["device_ids"]]  # fmt: skip
    assert len(host_ids) == len(set(host_ids))  # no GPU reserved twice
    assert compose["x-airflow-common"]["environment"]["EMOTION_GPUS_PER_TASK"] == "${EMOTION_GPUS_PER_TASK:-1}"
    # the extra GPU worker is opt-in, so a one-GPU host starts as it is
    assert "profiles" not in compose["services"]["airflow-worker-gpu"]
    assert compose["services"]["airflow-worker-gpu-1"]["profiles"] == ["second-gpu"]
    cpu = shlex.split(compose["services"]["airflow-worker"]["command"])
    assert cpu[cpu.index("--queues") + 1] == "default"


def _seconds(duration: str) -> int:
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([hms])", duration))


def test_workers_shut_down_warm_and_wait_for_the_running_stage(compose):
    for name in WORKERS:
        worker = compose["services"][name]
        assert _seconds(worker["stop_grace_period"]) >= GRACE_S, name
        assert worker["environment"]["DUMB_INIT_SETSID"] == "0", name


def test_init_creates_the_gpu_pool(compose):
    script = compose["services"]["airflow-init"]["command"][-1]
    assert "airflow db migrate" in script
    assert 'airflow pools set emotion_gpu "$${EMOTION_GPU_SLOTS}"' in COMPOSE.read_text()  # the GPU stages' pool


def test_airflow_image_has_the_celery_provider_dvc_and_git():
    text = (DOCKER / "Dockerfile.airflow").read_text()
    assert "ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11" in text.splitlines()
    assert 'pip install --no-cache-dir -r "${LOCK}" -r requirements-cluster.lock' in text
    assert "!requirements-cluster.lock" in (DOCKER / "Dockerfile.airflow.dockerignore").read_text().splitlines()
    cluster = (workspace.REPO / "requirements-cluster.lock").read_text()
    assert "apache-airflow-providers-celery==" in cluster and "apache-airflow-providers-amazon==" in cluster
    assert "install -y --no-install-recommends git openssh-client" in text
    lock = (workspace.REPO / "requirements.lock").read_text()
    assert "dvc==" in lock and "dvc-s3==" in lock and "dvc-ssh==" in lock  # DVC and its remotes come with the lock
    gpu = (workspace.REPO / "requirements-gpu.lock").read_text()
    assert "nvidia-cudnn-cu12==" in gpu and "nvidia-cublas-cu12==" in gpu  # the CUDA wheels, pinned


def test_every_compose_variable_is_in_both_example_env_files():
    text = "\n".join(line for line in COMPOSE.read_text().splitlines() if not line.lstrip().startswith("#"))
    used = set(re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)", text))
    for name in ["cluster.env.example", "gpu-host.env.example"]:
        lines = (DOCKER / name).read_text().splitlines()
        keys = {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}
        assert used == keys, (name, used ^ keys)


def test_helm_values_have_the_keys_the_chart_reads():
    """Structure only: helm is not installed here, so the chart never renders these values in the tests."""
    values = yaml.safe_load(HELM_VALUES.read_text())
    assert values["executor"] == "CeleryExecutor"
    assert values["images"]["airflow"]["repository"] and values["images"]["airflow"]["tag"]
    workers = values["workers"]
    assert workers["terminationGracePeriodSeconds"] >= GRACE_S
    assert workers["celery"]["queue"] == "default" and workers["celery"]["enableDefault"] is True
    (gpu,) = workers["celery"]["sets"]
    assert gpu["queue"] == "gpu" and gpu["resources"]["limits"]["nvidia.com/gpu"] == 1
    gpu_env = {e["name"]: e["value"] for e in gpu["env"]}
    assert gpu_env["EMOTION_GPU_DEVICES"] == "0" and gpu_env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] == "1"
    logging = values["config"]["logging"]
    assert logging["remote_logging"] == "True" and logging["remote_base_log_folder"].startswith("s3://")
    assert logging["remote_log_conn_id"] == "emotion_logs"
    env = {e["name"]: e["value"] for e in values["env"]}
    assert "emotion_logs" in {k.removeprefix("AIRFLOW_CONN_").lower() for k in env}
    assert "StrictHostKeyChecking=yes" in env["GIT_SSH_COMMAND"]
    env_from = yaml.safe_load(values["extraEnvFrom"])  # a string the chart templates
    assert {"configMapRef", "secretRef"} <= {key for item in env_from for key in item}
    mounts = {m["mountPath"] for m in values["volumeMounts"]}
    assert {"/run/secrets/git_ssh_key", "/run/secrets/git_known_hosts"} <= mounts
    assert values["logs"]["persistence"]["enabled"] is False and values["dags"]["gitSync"]["enabled"] is False
