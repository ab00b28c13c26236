"""The built wheel works on its own: rules inside it, run from outside the checkout and from the clone.

Also what a user's tools read from it: its metadata (version, Python
versions) and its type hints (``py.typed``), and what happens where
durable-rules was built without the fix Python 3.13 needs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import zipfile
from email.parser import Parser
from importlib.metadata import version
from pathlib import Path

import pytest

import backcare
from backcare._durable import CPPFLAGS_FIX

ROOT = Path(__file__).resolve().parents[1]
#: durable-rules 2.0.28 needs CPPFLAGS_FIX to build for these versions (see backcare._durable).
NEEDS_FIX = sys.version_info >= (3, 13)
#: An environment without the checkout on the path, as a user's would be.
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "CPPFLAGS")}


def make_venv(where: Path) -> Path:
    venv.EnvBuilder(with_pip=True).create(where)
    return where / "bin" / "python"


def pip_install(py: Path, *args: str, fix: bool = NEEDS_FIX) -> None:
    """pip install as the README tells users to: with the fix where it is needed, bypassing the cache.

    Without ``--no-cache-dir``, pip could reuse a wheel of durable-rules built
    earlier without the flag: it keys cached wheels by interpreter, not flags.
    """
    env = dict(CLEAN_ENV, CPPFLAGS=CPPFLAGS_FIX) if fix else CLEAN_ENV
    cache = ["--no-cache-dir"] if NEEDS_FIX else []
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", *cache, *args],
                   check=True, env=env)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
        check=True, cwd=dist,
    )
    (built,) = dist.glob("backcare-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel installed; returns its python."""
    py = make_venv(tmp_path_factory.mktemp("venv"))
    pip_install(py, str(wheel))
    return py


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    where = tmp_path / "elsewhere"
    where.mkdir()
    return where


@pytest.mark.slow
def test_wheel_installs_and_recommends_outside_the_checkout(wheel, installed, outside):
    names = zipfile.ZipFile(wheel).namelist()
    for rule_file in (ROOT / "rules").glob("*.toml"):
        assert f"backcare/rules/{rule_file.name}" in names
    # The serve extra's data: its code map, page templates and stylesheet.
    serve = ROOT / "src" / "backcare" / "_serve"
    for data in [serve / "fhir_codes.toml", *serve.glob("templates/*.html"), *serve.glob("static/*")]:
        assert f"backcare/_serve/{data.relative_to(serve).as_posix()}" in names

    script = (
        "import backcare, json, pathlib;"
        "r = backcare.recommend({'pain_weeks': 20, 'tight_bands': True});"
        "import backcare._loader as L;"
        "print(json.dumps({'first': r.techniques[0].id, 'file': backcare.__file__,"
        " 'rules': str(L.default_rules_path())}))"
    )
    out = subprocess.run([str(installed), "-c", script], check=True, cwd=outside, env=CLEAN_ENV,
                         capture_output=True, text=True)
    info = json.loads(out.stdout)
    assert info["first"] == "trigger_point_therapy"
    assert not info["file"].startswith(str(ROOT)), "imported the checkout, not the wheel"
    assert info["rules"].startswith(str(installed.parents[1])), "rules must come from inside the installed package"

    cli = subprocess.run([str(installed.parent / "backcare"), "rules", "test", info["rules"]], cwd=outside,
                         env=CLEAN_ENV, capture_output=True, text=True)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "rule coverage 100%" in cli.stdout


@pytest.mark.slow
def test_wheel_metadata_has_the_one_version_and_the_python_versions(wheel, installed, outside):
    with zipfile.ZipFile(wheel) as archive:
        (meta_name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        meta = Parser().parsestr(archive.read(meta_name).decode())
    assert meta["Version"] == backcare.__version__
    assert wheel.name.startswith(f"backcare-{backcare.__version__}-")
    assert version("backcare") == backcare.__version__  # the checkout's own install agrees
    installed_version = subprocess.run([str(installed), "-c", "import backcare; print(backcare.__version__)"],
                                       check=True, cwd=outside, env=CLEAN_ENV, capture_output=True, text=True)
    assert installed_version.stdout.strip() == backcare.__version__

    classifiers = meta.get_all("Classifier")
    running = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert f"Programming Language :: Python :: {running}" in classifiers
    assert "Typing :: Typed" in classifiers
    assert meta["Requires-Python"]


USER_CODE = """\
import backcare

result: backcare.Recommendation = backcare.recommend({"pain_weeks": 20})
first: str = result.techniques[0].id
"""


@pytest.mark.slow
def test_users_type_checker_sees_the_types(wheel, installed, outside, tmp_path):
    pytest.importorskip("mypy", reason="mypy comes with the test extra: pip install backcare[test]")
    assert "backcare/py.typed" in zipfile.ZipFile(wheel).namelist()

    def mypy(code: str) -> subprocess.CompletedProcess[str]:
        (outside / "user.py").write_text(code)
        return subprocess.run(
            [sys.executable, "-m", "mypy", "--strict", "--python-executable", str(installed),
             "--cache-dir", str(tmp_path / "mypy-cache"), "user.py"],
            cwd=outside, env=CLEAN_ENV, capture_output=True, text=True, timeout=600,
        )

    good = mypy(USER_CODE)
    assert good.returncode == 0, good.stdout + good.stderr
    # Not just "no errors": mypy must know what the installed package's names are.
    bad = mypy(USER_CODE.replace("first: str", "first: int"))
    assert bad.returncode == 1
    assert 'Incompatible types in assignment (expression has type "str", variable has type "int")' in bad.stdout


@pytest.mark.slow
def test_durable_rules_built_without_the_fix(wheel, tmp_path, outside):
    """Below 3.13 the plain build works; from 3.13 on, importing backcare names the fix, and the fix works."""
    py = make_venv(tmp_path / "venv")
    pip_install(py, f"durable-rules=={version('durable-rules')}", fix=False)  # never from the cache on 3.13+
    pip_install(py, str(wheel), fix=False)  # durable-rules is already there, so not rebuilt
    imported = subprocess.run([str(py), "-c", "import backcare"], cwd=outside, env=CLEAN_ENV,
                              capture_output=True, text=True)
    if not NEEDS_FIX:
        assert imported.returncode == 0, imported.stderr
        return

    assert imported.returncode == 1
    last = imported.stderr.strip().splitlines()
    assert last[-2].startswith("ImportError: backcare cannot load durable-rules"), imported.stderr
    fix = last[-1].strip()
    assert fix.startswith(f"CPPFLAGS={CPPFLAGS_FIX} {py} -m pip install"), fix
    assert "During handling" not in imported.stderr and "undefined symbol" not in imported.stderr

    subprocess.run(fix, shell=True, check=True, cwd=outside, env=CLEAN_ENV)  # the command as printed
    fixed = subprocess.run([str(py), "-c", "import backcare; print(backcare.recommend({}).techniques)"],
                           cwd=outside, env=CLEAN_ENV, capture_output=True, text=True)
    assert fixed.returncode == 0, fixed.stderr


@pytest.mark.slow
def test_the_readme_rules_commands_work_from_the_clone(installed):
    # The README's own commands, from the clone, with backcare installed from it
    # (not editable): the clone's rules/ is the installed default pack's source,
    # not a second pack (it gave 138 "already defined" problems).
    for command in (["rules", "test", "rules/"], ["rules", "test", "./rules"], ["rules", "check", "rules/"]):
        cli = subprocess.run([str(installed.parent / "backcare"), *command], cwd=ROOT, env=CLEAN_ENV,
                             capture_output=True, text=True)
        assert cli.returncode == 0, (command, cli.stdout + cli.stderr)
        assert "already defined" not in cli.stderr
        if command[1] == "test":
            assert " 0 failed; rule coverage 100%" in cli.stdout, cli.stdout
