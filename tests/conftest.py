"""Shared fixtures: the repository's params with a tiny test profile, and tiny raw datasets in the Kaggle layout."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from pipeline import config  # noqa: E402
from tests import workspace  # noqa: E402
from tests.workspace import REPO, tiny_dataset  # noqa: E402

if TYPE_CHECKING:
    from tests.cluster import Cluster
    from tests.dags.airflow_env import DagRun


SHARED_RUN = {"retraining_run", "reproduced_workspace"}
# the test files that read the retraining DAG run: `make test` (pytest-xdist, two processes) runs them on one process,
# one after the other, so that run happens once; every other file goes whole to whichever process is free
SHARED_FILES = {
    "tests/dags/test_dag_run.py",
    "tests/integration/test_evaluate_pipeline.py",
    "tests/integration/test_model_behaviour.py",
    "tests/integration/test_promote.py",
    "tests/integration/test_tune.py",
}


def pytest_collection_modifyitems(config, items):
    """A file that reads the retraining DAG run must be in SHARED_FILES, or two processes would each make that run."""
    reading = {item.nodeid.split("::")[0] for item in items if SHARED_RUN & set(item.fixturenames)}
    # in a pytest-xdist process an error here is an INTERNALERROR; there _once_per_session names the cause instead
    if reading - SHARED_FILES and os.environ.get("PYTEST_XDIST_WORKER") is None:
        raise pytest.UsageError(f"add {', '.join(sorted(reading - SHARED_FILES))} to SHARED_FILES in tests/conftest.py")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist's file scheduling, with SHARED_FILES as one unit. (Its `loadgroup` mode cannot be used: with
    pytest 9 its group names no longer reach the test ids.)"""
    # LoadScopeScheduling._split_scope is how xdist's own loadfile mode is written; guarded by the retraining_run
    # fixture below, which fails if the run starts on two processes
    from xdist.scheduler import LoadScopeScheduling

    class FilesAndTheSharedRun(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::")[0]
            return "retraining-run" if path in SHARED_FILES else path

    return FilesAndTheSharedRun(config, log)


@pytest.fixture(scope="session")
def raw_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


@pytest.fixture(scope="session")
def params(raw_params) -> config.Params:
    return config.from_dict(raw_params)


@pytest.fixture(scope="session")
def tiny_params() -> config.Params:
    """The test profile's settings (tests/profile.yaml: 75 px, tiny heads and decoder, one epoch)."""
    return workspace.tiny_params()


@pytest.fixture(scope="session")
def tiny_raw_master(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny") / "raw"
    return tiny_dataset(root)


@pytest.fixture
def tiny_raw(tiny_raw_master, tmp_path) -> Path:
    """A private, writable copy of a tiny sample dataset (3 train and 1 test image per class)."""
    root = tmp_path / "raw"
    shutil.copytree(tiny_raw_master, root)
    return root


@dataclass(frozen=True)
class RetrainingRun:
    home: Path  # AIRFLOW_HOME, with its SQLite DB
    cluster: Cluster  # origin, the DVC remote and the tasks' folder; later DAG tests go on running against them
    run: DagRun  # the first `airflow dags test` run
    snapshot: Path  # a fresh clone of origin after the first run, its outputs pulled from the DVC remote


@pytest.fixture(scope="session")
def retraining_run(tmp_path_factory) -> RetrainingRun:
    """The first run of the retraining DAG (`airflow dags test`) against a fresh origin and DVC remote with the test
    profile: each task in its own temporary clone, every stage executed once on tiny data, then a promotion.

    Running the pipeline is the slow part of the integration tests, so it runs once per session: the DAG tests check
    this run, and tests that need a reproduced pipeline take a copy of the clone of its result (reproduced_workspace).
    """
    from tests import cluster
    from tests.dags import airflow_env

    _once_per_session(tmp_path_factory)
    base = tmp_path_factory.mktemp("retraining")
    home = base / "airflow"
    airflow_env.migrate(home)
    made = cluster.make(base, overrides={"retrain": {"retries": 0}})  # no retries: a failure shows at once
    run = airflow_env.dags_test(home, made.env())
    snapshot = base / "after-first-run"
    if run.done.returncode == 0:
        made.clone(snapshot)
    return RetrainingRun(home, made, run, snapshot)


def _once_per_session(tmp_path_factory) -> None:
    """Under pytest-xdist each process has its own session: the run must start on one of them only (SHARED_FILES)."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return
    claim = tmp_path_factory.getbasetemp().parent / "retraining-run.started"  # the folder the processes share
    try:
        claim.touch(exist_ok=False)
    except FileExistsError:
        pytest.fail(f"the retraining DAG run started on a second pytest-xdist process ({claim}): see SHARED_FILES")


@pytest.fixture(scope="session")
def reproduced_workspace(retraining_run) -> Path:
    """A clone of the pipeline where every stage ran once on tiny data (test profile), its outputs pulled from the DVC
    remote and committed (promoted). Tests that change it work on their own copy (tests.workspace.copy)."""
    if retraining_run.run.done.returncode != 0:
        pytest.fail("the retraining DAG run that reproduces the pipeline failed (see tests/dags/test_dag_run.py)")
    return retraining_run.snapshot
