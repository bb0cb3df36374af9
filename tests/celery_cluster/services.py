"""The services a real Airflow cluster stands on, as local processes on loopback ports of their own: PostgreSQL and
Redis (Debian's packages, installed here when missing), an SSH server in front of the git origin (a forge as the
workers reach it: a deploy key and a pinned host key), and moto's S3 server as the DVC remote, behind a TCP relay
that a test can cut to make the remote unreachable without losing what it holds.

Every service runs in a process group of its own (`setsid`), so stopping one stops everything it started."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent
DEBIAN_PACKAGES = {"redis-server": "redis-server", "sshd": "openssh-server", "initdb": "postgresql"}
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "cluster-test-key", "AWS_SECRET_ACCESS_KEY": "cluster-test-secret"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check: Callable[[], bool], what: str, timeout: float, log: Path | None = None) -> None:
    """Poll ``check`` until it holds; fail with ``what`` (and the tail of ``log``) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if check():
                return
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s\n{tail}")


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


def install_missing() -> None:
    """Install the Debian packages of the services this machine lacks (CI starts from a bare image, as root)."""
    present = {"redis-server": shutil.which("redis-server"), "sshd": Path("/usr/sbin/sshd").exists()}
    present["initdb"] = postgres_bin() is not None
    missing = sorted({DEBIAN_PACKAGES[name] for name, ok in present.items() if not ok})
    if not missing:
        return
    if os.geteuid() != 0:
        raise RuntimeError(f"install these Debian packages first (as root): apt-get install {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], check=True, env=env)


@dataclass
class Service:
    """A process started in its own process group, its output in ``log``."""

    name: str
    args: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    cwd: Path | None = None
    user: str | None = None  # run as this user (PostgreSQL refuses root)
    proc: subprocess.Popen | None = None

    def start(self) -> Service:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = self.log.open("ab")
        kwargs = {}
        if self.user:
            entry = pwd.getpwnam(self.user)
            kwargs = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        self.proc = subprocess.Popen(
            self.args, stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd, start_new_session=True,
            **kwargs,
        )  # fmt: skip
        out.close()
        return self

    def restart(self) -> Service:
        """Start it again with the same command, ports and files (after a stop or a kill)."""
        self.stop()
        return self.start()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the service and everything it started, as a container runtime or systemd stops a unit: its process
        group, and every descendant, since Airflow's task supervisors start sessions of their own; reap the leader."""
        import psutil

        if self.proc is None:
            return
        try:
            descendants = psutil.Process(self.proc.pid).children(recursive=True)  # listed before any dies
        except psutil.NoSuchProcess:
            descendants = []
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        for proc in descendants:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM to the service and what it started, then SIGKILL to whatever is left (after up to 30 s for the
        leader to go); the leader may already be gone while its group lives on."""
        self.kill(signal.SIGTERM)
        self.kill(signal.SIGKILL)


def postgres() -> tuple[Service, int]:
    """A throw-away PostgreSQL cluster (trust auth, no fsync) with a database and role `airflow`."""
    bindir = postgres_bin()
    user = "postgres" if os.geteuid() == 0 else None
    # PostgreSQL runs as the postgres user when we are root: its folder must be reachable by that user
    root = Path(tempfile.mkdtemp(prefix="emotion-pg-"))
    root.chmod(0o755)
    data, port = root / "data", free_port()
    data.mkdir()
    if user:
        entry = pwd.getpwnam(user)
        os.chown(data, entry.pw_uid, entry.pw_gid)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    kwargs = {"user": user} if user else {}
    subprocess.run(
        [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-N", "-U", "postgres", "--no-instructions"],
        check=True, capture_output=True, **kwargs,
    )  # fmt: skip
    options = ["-p", str(port), "-k", str(root), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]
    options += ["-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200"]
    server = Service("postgres", [str(bindir / "postgres"), "-D", str(data), *options], root / "postgres.log",
                     user=user).start()  # fmt: skip
    wait_for(lambda: listening(port), "PostgreSQL", 60, server.log)
    psql = [str(bindir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-q", "-c"]
    subprocess.run([*psql, "CREATE ROLE airflow LOGIN PASSWORD 'airflow'"], check=True, capture_output=True)
    subprocess.run([*psql, "CREATE DATABASE airflow OWNER airflow"], check=True, capture_output=True)
    return server, port


def redis(base: Path) -> tuple[Service, int]:
    port = free_port()
    args = [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1"]
    args += ["--save", "", "--appendonly", "no", "--dir", str(base)]
    server = Service("redis", args, base / "logs" / "redis.log").start()
    wait_for(lambda: listening(port), "Redis", 30, server.log)
    return server, port


@dataclass(frozen=True)
class Forge:
    """The git origin behind sshd: the URL workers clone, the key they use, the host key line they pin."""

    url: str
    key: Path
    known_hosts_line: str
    port: int

    def install(self, home: Path) -> None:
        """What a worker's image holds: ~/.ssh/id_ed25519 and ~/.ssh/known_hosts, as ssh wants their modes."""
        ssh = home / ".ssh"
        ssh.mkdir(parents=True, exist_ok=True)
        ssh.chmod(0o700)
        shutil.copy(self.key, ssh / "id_ed25519")
        (ssh / "id_ed25519").chmod(0o600)
        (ssh / "known_hosts").write_text(self.known_hosts_line + "\n")

    @staticmethod
    def ssh_options(home: Path) -> str:
        ssh = home / ".ssh"
        return f"-i {ssh / 'id_ed25519'} -o IdentitiesOnly=yes -o UserKnownHostsFile={ssh / 'known_hosts'}"


def keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True)


def sshd(base: Path, origin: Path) -> tuple[Service, Forge]:
    """sshd on a loopback port, accepting one deploy key for the current user; origin is reached by its path."""
    root = base / "sshd"
    root.mkdir(parents=True)
    keygen(root / "host_key")
    keygen(root / "deploy_key")
    shutil.copy(root / "deploy_key.pub", root / "authorized_keys")
    port = free_port()
    (root / "sshd_config").write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {root / 'host_key'}",
                f"AuthorizedKeysFile {root / 'authorized_keys'}",
                f"PidFile {root / 'sshd.pid'}",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "UsePAM no",
                "StrictModes no",  # the test's temporary folders are not a home's
                "PrintMotd no",
                "LogLevel VERBOSE",
            ]
        )
        + "\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
    server = Service("sshd", ["/usr/sbin/sshd", "-D", "-e", "-f", str(root / "sshd_config")], root / "sshd.log")
    server.start()
    wait_for(lambda: listening(port), "sshd", 30, server.log)
    host_key = (root / "host_key.pub").read_text().split()[:2]
    user = pwd.getpwuid(os.getuid()).pw_name
    forge = Forge(
        f"ssh://{user}@127.0.0.1:{port}{origin}", root / "deploy_key", f"[127.0.0.1]:{port} {' '.join(host_key)}", port
    )
    return server, forge


def s3(base: Path) -> tuple[Service, int]:
    port = free_port()
    server = Service("moto", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], base / "logs" / "moto.log")
    server.start()
    wait_for(lambda: listening(port), "moto's S3 server", 60, server.log)
    return server, port


def relay(base: Path, target: int, port: int | None = None) -> tuple[Service, int]:
    """A TCP relay to ``target``: cut it (stop) and the S3 endpoint is unreachable; start it again on the same
    port and it is back, with everything the store held."""
    port = port or free_port()
    args = [sys.executable, "-m", "tests.celery_cluster.relay", str(port), str(target)]
    server = Service("relay", args, base / "logs" / "relay.log", cwd=Path(__file__).resolve().parents[2])
    server.start()
    wait_for(lambda: listening(port), "the S3 relay", 30, server.log)
    return server, port


def s3_client(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        **{k.lower(): v for k, v in CREDENTIALS.items()})  # fmt: skip


def create_buckets(endpoint: str, *names: str) -> None:
    client = s3_client(endpoint)
    for name in names:
        client.create_bucket(Bucket=name)
