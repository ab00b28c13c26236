"""The built wheel works on its own: rules inside it, run from outside the checkout and from the clone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installs_and_recommends_outside_the_checkout(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
        check=True, cwd=tmp_path,
    )
    (wheel,) = dist.glob("backcare-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for rule_file in (ROOT / "rules").glob("*.toml"):
        assert f"backcare/rules/{rule_file.name}" in names

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)], check=True)

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    script = (
        "import backcare, json, pathlib;"
        "r = backcare.recommend({'pain_weeks': 20, 'tight_bands': True});"
        "import backcare._loader as L;"
        "print(json.dumps({'first': r.techniques[0].id, 'file': backcare.__file__,"
        " 'rules': str(L.default_rules_path())}))"
    )
    out = subprocess.run([str(py), "-c", script], check=True, cwd=outside, env=env, capture_output=True, text=True)
    info = json.loads(out.stdout)
    assert info["first"] == "trigger_point_therapy"
    assert not info["file"].startswith(str(ROOT)), "imported the checkout, not the wheel"
    assert info["rules"].startswith(str(env_dir)), "rules must come from inside the installed package"

    cli = subprocess.run([str(env_dir / "bin" / "backcare"), "rules", "test", info["rules"]], cwd=outside, env=env,
                         capture_output=True, text=True)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "rule coverage 100%" in cli.stdout

    # The README's own commands, from the clone, with backcare installed from it
    # (not editable): the clone's rules/ is the installed default pack's source,
    # not a second pack (it gave 138 "already defined" problems).
    for command in (["rules", "test", "rules/"], ["rules", "test", "./rules"], ["rules", "check", "rules/"]):
        cli = subprocess.run([str(env_dir / "bin" / "backcare"), *command], cwd=ROOT, env=env,
                             capture_output=True, text=True)
        assert cli.returncode == 0, (command, cli.stdout + cli.stderr)
        assert "already defined" not in cli.stderr
        if command[1] == "test":
            assert " 0 failed; rule coverage 100%" in cli.stdout, cli.stdout

