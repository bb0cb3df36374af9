"""What a newcomer types first on a fresh clone, offline: `make data` (`dvc pull data.dvc`) brings the sample data
from the in-repo remote, and `dvc pull --allow-missing` brings everything that remote holds, without an error."""

from __future__ import annotations

import subprocess

import pytest

from tests import workspace

pytestmark = pytest.mark.integration


def test_a_fresh_clone_pulls_the_sample_data_offline(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(workspace.REPO), str(clone)], check=True)
    workspace.dvc(clone, "pull", "data.dvc")
    # the sample at the study's sizes (params.yaml sample_data.counts)
    assert len(list((clone / "data/raw/Train").rglob("*.jpg"))) == 760
    assert len(list((clone / "data/raw/Test").rglob("*.jpg"))) == 75
    workspace.dvc(clone, "pull", "--allow-missing")
    assert "data.dvc" not in workspace.dvc(clone, "status", "data.dvc").stdout
