"""The test profile's model settings (tests/profile.yaml: tiny heads and decoder), shared by the model tests."""

from __future__ import annotations

import pytest

from pipeline import config
from tests import workspace


@pytest.fixture(scope="session")
def tiny_params() -> config.Params:
    return config.from_dict(workspace.profile_params())
