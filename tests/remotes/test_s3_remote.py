"""The DVC remote through the S3 protocol: `dvc-s3` pushes to and pulls from a bucket of moto's S3 server, run on
loopback, with credentials from the environment and the endpoint as the DAG's workers set it (a `--local` remote
override, dags/workspaces.py). Proves the plugin and the credentials path without a network or a cloud account."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests import workspace
from tests.celery_cluster import services

pytestmark = pytest.mark.integration

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "test-key",
    "AWS_SECRET_ACCESS_KEY": "test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    server, port = services.s3(tmp_path_factory.mktemp("moto"))  # the cluster test's S3 store, started the same way
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def dvc(root: Path, *args: str, env: dict) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=root, env={**workspace.env(), **env}, capture_output=True, text=True
    )
    assert done.returncode == 0, f"dvc {' '.join(args)}\n{done.stdout}\n{done.stderr}"
    return done


def test_push_and_pull_through_an_s3_remote(s3_endpoint, tmp_path):
    import boto3

    boto3.client("s3", endpoint_url=s3_endpoint, **{k.lower(): v for k, v in CREDENTIALS.items() if "KEY" in k},
                 region_name="us-east-1").create_bucket(Bucket="emotion-dvc")  # fmt: skip
    env = {**CREDENTIALS}
    root = tmp_path / "repo"
    root.mkdir()
    workspace.sh(root, "git", "init", "-q")
    dvc(root, "init", "-q", env=env)
    # the remote as a worker sets it: URL and endpoint in .dvc/config.local, credentials from the environment only
    dvc(root, "remote", "add", "--local", "--default", "cluster", "s3://emotion-dvc/store", env=env)
    dvc(root, "remote", "modify", "--local", "cluster", "endpointurl", s3_endpoint, env=env)
    (root / "data").mkdir()
    (root / "data" / "faces.txt").write_text("a face\n")
    dvc(root, "add", "-q", "data", env=env)
    dvc(root, "push", env=env)
    assert "credentials" not in (root / ".dvc" / "config").read_text()

    (root / "data" / "faces.txt").unlink()
    workspace.sh(root, "rm", "-rf", ".dvc/cache")
    dvc(root, "pull", env=env)
    assert (root / "data" / "faces.txt").read_text() == "a face\n"

    # without credentials in the environment the same pull fails: they come from there, not from a file in the repo
    bare = {k: v for k, v in workspace.env().items() if not k.startswith("AWS_")}
    bare |= {"AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    bare["AWS_EC2_METADATA_DISABLED"] = "true"  # no instance-metadata lookup: loopback traffic only
    workspace.sh(root, "rm", "-rf", ".dvc/cache", "data")
    done = subprocess.run([sys.executable, "-m", "dvc", "pull"], cwd=root, env=bare, capture_output=True, text=True)
    assert done.returncode != 0 and not (root / "data" / "faces.txt").exists()
