"""Shared fixtures: the repository's params with a tiny test profile, and tiny raw datasets in the Kaggle layout."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from pipeline import config  # noqa: E402
from pipeline.data import sample  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TINY_COUNTS = {"train": dict.fromkeys(sample.FOLDERS, 3), "test": dict.fromkeys(sample.FOLDERS, 1)}


@pytest.fixture(scope="session")
def raw_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


@pytest.fixture(scope="session")
def params(raw_params) -> config.Params:
    return config.from_dict(raw_params)


@pytest.fixture(scope="session")
def tiny_raw_master(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny") / "raw"
    sample.generate(root, TINY_COUNTS, seed=7, size=80)
    return root


@pytest.fixture
def tiny_raw(tiny_raw_master, tmp_path) -> Path:
    """A private, writable copy of a tiny sample dataset (3 train and 1 test image per class)."""
    root = tmp_path / "raw"
    shutil.copytree(tiny_raw_master, root)
    return root


def tree_digest(root: Path) -> dict[str, str]:
    """Content hash of every file under root, to prove a stage did not write to its inputs."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="session")
def reproduced_workspace(tmp_path_factory) -> Path:
    """A workspace where `dvc repro` ran the whole pipeline once on tiny data (test profile), committed.

    Running the pipeline is the slow part of the integration tests, so it runs once per session; a test that changes
    the workspace works on its own copy (tests.workspace.copy)."""
    from tests import workspace

    return workspace.reproduce(workspace.make(tmp_path_factory.mktemp("reproduced") / "ws"))
