"""Shared fixtures and Hypothesis strategies for the backcare tests."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir

import backcare

settings.register_profile(
    "backcare", deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True,
    database=None,  # nothing is written outside temporary directories
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "backcare"))
# Hypothesis also caches constants it finds in the code: keep them out of the checkout.
set_hypothesis_home_dir(str(Path(tempfile.gettempdir()) / "backcare-hypothesis"))


@pytest.fixture(scope="session")
def default_recommender() -> backcare.Recommender:
    return backcare.Recommender(cache_size=0)
