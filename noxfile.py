"""``make test`` on every Python version backcare supports that this machine has.

``nox`` (the test extra installs it: ``.venv/bin/nox`` after ``make test``)
has one session per version in pyproject.toml's classifiers, ``tests-3.10``
to ``tests-3.13``. Each runs the Makefile's own ``make test`` with that
interpreter and a virtual environment of its own under ``.nox/``, so the
set-up (durable-rules' build fix on 3.13 included) is the one ``make test``
uses, not a second copy. A version with no interpreter on the machine is
skipped, and nox's summary names it. ``nox -s tests-3.13`` runs one version.

Interpreters are looked for as ``python3.X`` on PATH, then under pyenv's
versions directory (pyenv only puts the versions it has activated on PATH).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import nox

nox.needs_version = ">=2024.4.15"

VERSIONS = nox.project.python_versions(nox.project.load_toml("pyproject.toml"))


def find_interpreter(version: str) -> str | None:
    """The first ``pythonX.Y`` that runs and is that version, on PATH or under pyenv."""
    name = f"python{version}"
    candidates = [str(Path(d) / name) for d in os.get_exec_path()]
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    candidates += sorted(str(p) for p in pyenv_root.glob(f"versions/{version}.*/bin/{name}"))
    check = f"import sys; sys.exit(sys.version_info[:2] != {tuple(int(n) for n in version.split('.'))})"
    for candidate in candidates:
        if os.access(candidate, os.X_OK) and subprocess.run(
            [candidate, "-c", check], capture_output=True, check=False
        ).returncode == 0:
            return candidate
    return None


def _tests_on(version: str) -> None:
    def tests(session: nox.Session) -> None:
        interpreter = find_interpreter(version)
        if interpreter is None:
            session.skip(f"no Python {version} found (looked for python{version} on PATH and under pyenv)")
        session.run("make", "test", f"PYTHON={interpreter}", f"VENV=.nox/tests-{version}", external=True)

    tests.__doc__ = f"make test on Python {version}"
    # The Makefile makes and keeps each version's environment, so nox makes none.
    nox.session(name=f"tests-{version}", venv_backend="none")(tests)


for _version in VERSIONS:
    _tests_on(_version)
