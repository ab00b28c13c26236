"""Shared fixtures and Hypothesis strategies for the backcare tests."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir

import backcare

# pytest's own fixture for running pytest inside a test: tests/test_pytest_plugin.py uses it.
pytest_plugins = ("pytester",)

settings.register_profile(
    "backcare", deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True,
    database=None,  # nothing is written outside temporary directories
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "backcare"))
# Hypothesis also caches constants it finds in the code: keep them out of the checkout.
set_hypothesis_home_dir(str(Path(tempfile.gettempdir()) / "backcare-hypothesis"))


@pytest.fixture(scope="session")
def docs_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The documentation built as HTML once per session, with warnings as errors."""
    from tests import docsite

    out = tmp_path_factory.mktemp("docs-html")
    status, log = docsite.build("html", out)
    assert status == 0, f"the HTML build failed or warned:\n{log}"
    return out


@pytest.fixture(scope="session")
def default_recommender() -> backcare.Recommender:
    return backcare.Recommender(cache_size=0)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under ``make test`` every extra is installed, so a skipped test means a broken set-up.

    Tests skip (with the reason) when an optional extra or Graphviz is
    missing, which is right for someone running a few tests by hand, but a
    suite that quietly skips its Dask or docs tests must not pass as a whole.
    """
    if not os.environ.get("BACKCARE_NO_SKIPS"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped and session.exitstatus == 0:
        for report in skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
            print(f"\nskipped under make test: {report.nodeid}: {reason}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
