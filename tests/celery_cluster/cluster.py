"""A real Airflow 3 cluster on this one machine, as separate processes: PostgreSQL, Redis, the API server, the
scheduler, the DAG processor and two Celery workers (`default`, and `gpu` with the `emotion_gpu` pool), a git origin
over SSH and an S3 endpoint as the DVC remote (tests/celery_cluster/services.py).

The Airflow components run with the environment of docker/compose.yaml (its `x-airflow-common.environment` block,
interpolated as Compose does, with this machine's addresses), plus what only a shared machine needs: a name per
component (a container has its own hostname), its own AIRFLOW_HOME, HOME and task folder, and shorter timeouts."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from tests import cluster as disk_cluster
from tests import workspace
from tests.celery_cluster import services
from tests.celery_cluster.services import BIN, Service, wait_for
from tests.run_records import missing_run_objects

COMPOSE = workspace.REPO / "docker" / "compose.yaml"
SEED = workspace.REPO / "docker" / "seed-remote.sh"
DAG_ID = "emotion_retraining"
ADMIN = ("admin", secrets.token_urlsafe(12))
_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate(text: str, values: dict[str, str]) -> str:
    """Compose's interpolation: ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` and ``$$`` for a dollar."""

    def one(match: re.Match) -> str:
        if match[0] == "$$":
            return "$"
        name, op, arg = match[1], match[2], match[3]
        value = values.get(name)
        empty = value is None or (value == "" and op and op.startswith(":"))
        if op and op.endswith("?") and empty:
            raise KeyError(f"{name}: {arg}")
        if op and op.endswith("-") and empty:
            return interpolate(arg, values)
        return value or ""

    return _VARIABLE.sub(one, text)


def compose_environment(values: dict[str, str]) -> dict[str, str]:
    """The Airflow components' environment as docker/compose.yaml defines it, with ``values`` for its variables."""
    spec = yaml.safe_load(COMPOSE.read_text())
    block = spec["x-airflow-common"]["environment"]
    return {key: interpolate(str(value), values) for key, value in block.items()}


@dataclass
class LocalCluster:
    base: Path
    disk: disk_cluster.Cluster  # origin (bare repository), its own DVC remote, the dvc.yaml the DAG is parsed from
    forge: services.Forge
    env: dict[str, str]  # the compose environment, interpolated
    api: str
    s3_endpoint: str
    s3_backend: int
    services: dict[str, Service] = field(default_factory=dict)
    log_ports: dict[str, int] = field(default_factory=dict)  # each worker's log server, both on one machine
    token: str = ""

    # ---- components

    def component_env(self, name: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        home = self.base / name
        (home / "home").mkdir(parents=True, exist_ok=True)
        (home / "tasks").mkdir(exist_ok=True)
        self.forge.install(home / "home")  # what the image's user has in ~/.ssh (docker/compose.yaml)
        return {
            **workspace.env(),
            **self.env,
            "AIRFLOW_HOME": str(home),
            "HOME": str(home / "home"),
            "EMOTION_WORKER_NAME": name,
            "EMOTION_WORKDIR": str(home / "tasks"),
            # ssh reads ~/.ssh of the passwd entry, not of $HOME: on a machine shared by several "hosts" each
            # names its own files, the ones a worker's image has in the home of its user
            "GIT_SSH_COMMAND": f"{self.env.get('GIT_SSH_COMMAND', 'ssh')} {self.forge.ssh_options(home / 'home')}",
            **(extra or {}),
        }

    def start(self, name: str, *args: str, extra: dict | None = None) -> Service:
        service = Service(name, [str(BIN / "airflow"), *args], self.base / "logs" / f"{name}.log",
                          env=self.component_env(name, extra), cwd=self.base / name)  # fmt: skip
        self.services[name] = service.start()
        return service

    def airflow(self, *args: str) -> str:
        done = subprocess.run([str(BIN / "airflow"), *args], env=self.component_env("cli"), cwd=self.base,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        if done.returncode != 0:
            raise AssertionError(f"airflow {' '.join(args)} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def worker(self, name: str) -> Service:
        queue = WORKERS[name]
        port = self.log_ports.setdefault(name, services.free_port())
        extra = {"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(port)}
        if queue == "gpu":
            extra["EMOTION_GPU_DEVICES"] = "0,1"  # two pretend GPUs: each task leases one (dags/workspaces.py)
        service = self.start(name, "celery", "worker", "--queues", queue, "--concurrency", "2", extra=extra)
        wait_for(lambda: "ready." in service.log.read_text(errors="replace"), f"worker {name}", 180, service.log)
        return service

    def restart(self, name: str) -> Service:
        log = self.services[name].log
        log.rename(log.with_suffix(f".{int(time.time())}.log"))
        return self.worker(name)

    def stop_all(self) -> None:
        for service in reversed(list(self.services.values())):
            service.stop()

    # ---- the REST API, as an operator or a script uses it

    def request(self, method: str, path: str, **kwargs) -> dict:
        headers = {"Authorization": f"Bearer {self.token}"}
        response = httpx.request(method, f"{self.api}{path}", headers=headers, timeout=30, **kwargs)
        if response.status_code >= 400:
            raise AssertionError(f"{method} {path}: {response.status_code} {response.text[:2000]}")
        return response.json() if response.content else {}

    def login(self) -> None:
        response = httpx.post(f"{self.api}/auth/token", json={"username": ADMIN[0], "password": ADMIN[1]}, timeout=30)
        response.raise_for_status()
        self.token = response.json()["access_token"]

    def trigger(self, conf: dict | None = None) -> str:
        self.request("PATCH", f"/api/v2/dags/{DAG_ID}", json={"is_paused": False})
        run = self.request("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf or {}})
        return run["dag_run_id"]

    def run_state(self, run_id: str) -> str:
        return self.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")["state"]

    def task_instances(self, run_id: str) -> dict[str, dict]:
        found = self.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", params={"limit": 100})
        return {ti["task_id"]: ti for ti in found["task_instances"]}

    def tries(self, run_id: str, task_id: str) -> list[dict]:
        found = self.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/tries")
        return sorted(found["task_instances"], key=lambda t: t["try_number"])

    def wait_for_task(self, run_id: str, task_id: str, states: set[str], timeout: float) -> None:
        def there() -> bool:
            return self.task_instances(run_id).get(task_id, {}).get("state") in states

        self._wait(run_id, there, f"{task_id} in {states}", timeout)

    def wait_for_run(self, run_id: str, timeout: float) -> str:
        self._wait(run_id, lambda: self.run_state(run_id) in ("success", "failed"), f"the end of {run_id}", timeout)
        return self.run_state(run_id)

    def _wait(self, run_id: str, check, what: str, timeout: float) -> None:
        """services.wait_for, and on a timeout the run's task instances, to show where it stands."""
        try:
            wait_for(check, what, timeout)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}: {self.task_instances(run_id)}") from None


# worker name -> the Celery queue it consumes
WORKERS = {"worker-default": "default", "worker-gpu": "gpu"}


def up(base: Path, overrides: dict) -> LocalCluster:
    """Install what is missing, start every service, seed the DVC remote, start Airflow; the DAG ready to trigger."""
    services.install_missing()
    disk = disk_cluster.make(base, overrides)
    pg, pg_port = services.postgres()
    broker, redis_port = services.redis(base)
    sshd, forge = services.sshd(base, disk.origin)
    moto, moto_port = services.s3(base)
    relay, relay_port = services.relay(base, moto_port)
    endpoint = f"http://127.0.0.1:{relay_port}"
    services.create_buckets(f"http://127.0.0.1:{moto_port}", "emotion-dvc", "emotion-logs")
    api_port = services.free_port()
    from cryptography.fernet import Fernet

    values = {
        "POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": str(pg_port), "POSTGRES_PASSWORD": "airflow",
        "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis_port),
        "AIRFLOW_APISERVER_HOST": "127.0.0.1", "AIRFLOW_APISERVER_PORT": str(api_port),
        "AIRFLOW_DAGS_FOLDER": str(workspace.REPO / "dags"),
        "AIRFLOW_FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW_JWT_SECRET": secrets.token_urlsafe(32), "AIRFLOW_SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW_ALL_ADMINS": "false",
        # a dead worker's task is failed after 20 s without a heartbeat (workers beat every 5 s)
        "AIRFLOW_TASK_HEARTBEAT_TIMEOUT": "20",
        "EMOTION_GIT_REMOTE": forge.url, "EMOTION_GIT_BRANCH": "main",
        "EMOTION_DVC_REMOTE": "s3://emotion-dvc/store", "EMOTION_DVC_REMOTE_ENDPOINT": endpoint,
        "EMOTION_LOG_FOLDER": "s3://emotion-logs/airflow",
        "MINIO_ROOT_USER": services.CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "MINIO_ROOT_PASSWORD": services.CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    }  # fmt: skip
    passwords = base / "passwords.json"
    passwords.write_text(json.dumps({ADMIN[0]: ADMIN[1]}))
    env = {
        **compose_environment(values),
        # only a shared machine needs these: names, ports and paths that containers would each have to themselves
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.celery_cluster.hostname.worker_name",
        "PYTHONPATH": str(workspace.REPO),
        "EMOTION_PIPELINE_DIR": str(disk.dag_source),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN[0]}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
    }
    cluster = LocalCluster(base, disk, forge, env, f"http://127.0.0.1:{api_port}", endpoint, moto_port)
    cluster.services.update({"postgres": pg, "redis": broker, "sshd": sshd, "moto": moto, "relay": relay})
    try:
        seed_env = cluster.component_env("seed", {"EMOTION_SEED_FROM": str(disk.remote)})  # origin's own remote
        seed = subprocess.run(["bash", str(SEED)], env=seed_env, cwd=base,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert seed.returncode == 0, f"docker/seed-remote.sh failed\n{seed.stdout}\n{seed.stderr}"
        cluster.airflow("db", "migrate")
        cluster.airflow("pools", "set", "emotion_gpu", "2", "GPU stages of the retraining DAG, one per GPU")
        api = cluster.start("api-server", "api-server", "--port", str(api_port))
        cluster.start("scheduler", "scheduler")
        cluster.start("dag-processor", "dag-processor")
        for name in WORKERS:
            cluster.worker(name)
        wait_for(lambda: _answers(f"{cluster.api}/api/v2/monitor/health"), "the API server", 180, api.log)
        cluster.login()
        wait_for(lambda: _parsed(cluster), "the DAG", 180, cluster.services["dag-processor"].log)
    except BaseException:
        cluster.stop_all()
        raise
    return cluster


def _answers(url: str, **kwargs) -> bool:
    """``url`` answers 200; False while nothing listens yet (httpx's ConnectError is no OSError, which wait_for
    already treats as "not yet": on a slow machine the first poll comes before the API server listens)."""
    try:
        return httpx.get(url, timeout=5, **kwargs).status_code == 200
    except httpx.TransportError:
        return False


def _parsed(cluster: LocalCluster) -> bool:
    return _answers(f"{cluster.api}/api/v2/dags/{DAG_ID}", headers={"Authorization": f"Bearer {cluster.token}"})


def processes_under(folder: Path) -> list[str]:
    """Live processes whose working directory lies under ``folder`` (a worker's task workspaces)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "cwd", "status"]):
        cwd = proc.info.get("cwd") or ""
        if cwd.startswith(str(folder)) and proc.info.get("status") != psutil.STATUS_ZOMBIE:
            found.append(f"{proc.info['pid']}: {' '.join(proc.info.get('cmdline') or [])}")
    return found


def s3_client(cluster: LocalCluster):
    """A client of the S3 store itself (behind the relay, so it answers while the relay is cut)."""
    return services.s3_client(f"http://127.0.0.1:{cluster.s3_backend}")


def objects(cluster: LocalCluster, bucket: str, prefix: str) -> list[str]:
    """Every key under ``prefix`` in ``bucket``, the prefix stripped."""
    pages = s3_client(cluster).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [obj["Key"][len(prefix) :] for page in pages for obj in page.get("Contents", [])]


def run_records(cluster: LocalCluster) -> dict[str, list[str]]:
    """The DVC remote's run-cache: record names by stage key (runs/<2 chars>/<key>/<record>)."""
    records: dict[str, list[str]] = {}
    for path in objects(cluster, "emotion-dvc", "store/runs/"):
        *_, key, record = path.split("/")
        records.setdefault(key, []).append(record)
    return records


def missing_objects(cluster: LocalCluster) -> list[str]:
    """What the remote's run records name and the remote lacks (tests/run_records.py): empty when every record can
    be restored by a downstream `dvc repro --pull`."""
    client = s3_client(cluster)
    files = objects(cluster, "emotion-dvc", "store/")
    return missing_run_objects(
        files, lambda path: client.get_object(Bucket="emotion-dvc", Key=f"store/{path}")["Body"].read()
    )
