"""Which Pythons backcare supports is said once and agreed on everywhere; a bad durable-rules build is named.

requires-python, the classifiers, nox's sessions and the Makefile's
interpreter choice must list the same versions, and the one running the
suite must be among them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

import backcare

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
CLASSIFIED = [c.rsplit(" ", 1)[1] for c in PROJECT["classifiers"] if c.startswith("Programming Language :: Python :: 3.")]


def test_requires_python_and_classifiers_name_the_same_versions():
    allowed = SpecifierSet(PROJECT["requires-python"])
    assert [f"3.{minor}" for minor in range(30) if f"3.{minor}" in allowed] == CLASSIFIED
    assert f"{sys.version_info[0]}.{sys.version_info[1]}" in CLASSIFIED


def test_the_makefile_chooses_among_the_same_versions():
    lowest, beyond = re.search(r"\(3,(\d+)\) <= sys.version_info\[:2\] < \(3,(\d+)\)",
                               (ROOT / "Makefile").read_text()).groups()
    assert [f"3.{m}" for m in range(int(lowest), int(beyond))] == CLASSIFIED


@pytest.mark.slow
def test_nox_has_a_session_per_supported_version():
    pytest.importorskip("nox", reason="nox comes with the test extra: pip install backcare[test]")
    listed = subprocess.run([sys.executable, "-m", "nox", "--list", "--json"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, check=True)
    assert [s["name"] for s in json.loads(listed.stdout)] == [f"tests-{v}" for v in CLASSIFIED]


def fake_durable_core(where: Path, error: str) -> dict[str, str]:
    """An environment where durable-rules' C core fails to load with ``error``, as a broken build does.

    durable/engine.py imports the module ``durable_rules_engine``; a
    ``.py`` of that name earlier on the path stands in for the compiled one.
    """
    (where / "durable_rules_engine.py").write_text(f"raise ImportError({error!r})\n")
    return dict(os.environ, PYTHONPATH=str(where))


def import_backcare(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "import backcare"], env=env, capture_output=True, text=True,
                          timeout=120)


def test_durable_built_without_the_313_fix_fails_with_the_fix_named(tmp_path):
    so = tmp_path / "durable_rules_engine.cpython-313-x86_64-linux-gnu.so"
    done = import_backcare(fake_durable_core(tmp_path, f"{so}: undefined symbol: PyEval_CallObject"))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[-2].startswith("ImportError: backcare cannot load durable-rules: its C core was compiled"), done.stderr
    assert lines[-1].strip() == (
        f"CPPFLAGS=-DPyEval_CallObject=PyObject_CallObject {sys.executable} -m pip install"
        f" --force-reinstall --no-deps --no-cache-dir durable-rules=={version('durable-rules')}"
    )
    # One message: not the loader's, and not chained to it.
    assert "undefined symbol" not in done.stderr and "During handling" not in done.stderr


def test_other_durable_import_errors_are_left_alone(tmp_path):
    error = "libgcc_s.so.1: cannot open shared object file: No such file or directory"
    done = import_backcare(fake_durable_core(tmp_path, error))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == f"ImportError: {error}"


def test_the_engine_warns_of_nothing_deprecated():
    """durable-rules' clock used datetime.utcfromtimestamp, deprecated since 3.12, on every rule firing.

    Under warnings-as-errors (``-W error``, pytest's ``filterwarnings``)
    that made every recommendation an EngineError on 3.12 and later.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = backcare.Recommender(cache_size=0).recommend({"pain_weeks": 20, "tight_bands": True})
    assert result.techniques
    assert [str(w.message) for w in caught] == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert backcare.Recommender(cache_size=0).recommend({"stiffness": True}).techniques
