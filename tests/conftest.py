"""Shared fixtures and Hypothesis strategies for the backcare tests."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

import backcare

settings.register_profile(
    "backcare", deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "backcare"))

@pytest.fixture(scope="session")
def default_recommender() -> backcare.Recommender:
    return backcare.Recommender(cache_size=0)
