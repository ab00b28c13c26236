"""Every page's examples work for a reader who pastes them, outside the docs build.

A reader has run ``pip install backcare`` and follows a page in an empty
directory: they create the files it shows (``backcare-file``), run the
commands it shows (``backcare-command``) and paste its Python examples
(``doctest`` blocks) into a fresh ``python``, in the order the page gives
them. This test does exactly that for every page, from the page's source,
without Sphinx: in a new empty directory, in a new interpreter, with nothing
of this checkout on hand but the installed package. The docs build checks
the same examples as doctests; this checks that nothing there (a variable
set up by ``conf.py``, a file of the checkout) is what makes them pass.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
pytestmark = pytest.mark.skipif(not (DOCS / "conf.py").is_file(), reason="no docs/ in this tree")

#: The directives whose blocks a reader acts on; any other test directive would be run only by Sphinx.
FOLLOWED = ("doctest", "backcare-file", "backcare-command")
SPHINX_ONLY = ("testsetup", "testcleanup", "testcode", "testoutput")


@dataclass
class Step:
    kind: str
    argument: str
    options: dict[str, str] = field(default_factory=dict)
    body: str = ""
    line: int = 0


def steps(page: Path) -> list[Step]:
    """The page's examples in order, read from its reStructuredText."""
    lines = page.read_text(encoding="utf-8").splitlines()
    out: list[Step] = []
    i = 0
    directive = re.compile(r"^(\s*)\.\. ([\w-]+)::\s*(.*)$")
    while i < len(lines):
        m = directive.match(lines[i])
        if not m or m.group(2) not in FOLLOWED + SPHINX_ONLY:
            i += 1
            continue
        indent, kind, argument = len(m.group(1)), m.group(2), m.group(3).strip()
        assert kind not in SPHINX_ONLY, f"{page.name}:{i + 1}: {kind} runs only in Sphinx; use a doctest block"
        start = i + 1
        i += 1
        options = {}
        while i < len(lines) and re.match(rf"^\s{{{indent + 1},}}:([\w-]+):(.*)$", lines[i]):
            key, value = re.match(r"^\s*:([\w-]+):(.*)$", lines[i]).groups()  # type: ignore[union-attr]
            options[key] = value.strip()
            i += 1
        body = []
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
            body.append(lines[i])
            i += 1
        text = textwrap.dedent("\n".join(body)).strip("\n")
        out.append(Step(kind, argument, options, text + "\n" if text else "", start))
    return out


def pages() -> list[Path]:
    generated = ("_generated", "_build", "catalogue")
    return sorted(p for p in DOCS.rglob("*.rst") if not set(p.relative_to(DOCS).parts[:1]) & set(generated))


def script(page: Path) -> str:
    """The page as one doctest: file writes and commands become examples, in the page's order."""
    parts = [">>> from tests_docs_runner import write as _write, run as _run\n"]
    for step in steps(page):
        if step.kind == "doctest":
            parts.append(step.body)
        elif step.kind == "backcare-file":
            text = ((page.parent / step.options["from"]).read_text(encoding="utf-8") if "from" in step.options
                    else step.body)
            parts.append(f">>> _write({step.argument!r}, {text!r})\n")
        else:
            cwd = str(DOCS.parent) if step.options.get("cwd") == "checkout" else None
            parts.append(f">>> _run({step.argument!r}, exit={int(step.options.get('exit', 0))}, "
                         f"stdout={step.options.get('stdout')!r}, cwd={cwd!r})\n")
    return "\n".join(parts)


RUNNER = '''
"""Helpers for a page's script: write a file the page shows, run a command it shows."""
import os, shlex, subprocess, sys
from pathlib import Path

def write(path, text):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text, encoding="utf-8")

def run(command, exit=0, stdout=None, cwd=None):
    argv = shlex.split(command)
    assert argv[0] == "backcare", command
    exe = Path(sys.executable).with_name("backcare")
    done = subprocess.run([str(exe), *argv[1:]], capture_output=True, text=True, cwd=cwd, timeout=300)
    if done.returncode != exit:
        print(f"{command!r} exited {done.returncode}, not {exit}: {(done.stderr or done.stdout)[:500]}")
    if stdout:
        Path(stdout).write_text(done.stdout, encoding="utf-8")
'''

DRIVER = '''
import doctest, sys
text = open(sys.argv[1], encoding="utf-8").read()
flags = doctest.ELLIPSIS | doctest.IGNORE_EXCEPTION_DETAIL | doctest.DONT_ACCEPT_TRUE_FOR_1
test = doctest.DocTestParser().get_doctest(text, {"__name__": "__main__"}, sys.argv[2], sys.argv[2], 0)
runner = doctest.DocTestRunner(optionflags=flags)
runner.run(test)
sys.exit(1 if runner.failures else 0)
'''


def follow(page: Path, where: Path) -> subprocess.CompletedProcess[str]:
    """Follow ``page`` in the empty directory ``where``, in a fresh interpreter."""
    helpers = where.parent / f"{where.name}-helpers"
    helpers.mkdir()
    (helpers / "tests_docs_runner.py").write_text(RUNNER, encoding="utf-8")
    (helpers / "page.txt").write_text(script(page), encoding="utf-8")
    (helpers / "driver.py").write_text(DRIVER, encoding="utf-8")
    env = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "PYTHONPATH": str(helpers),
           "HOME": str(where), "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, str(helpers / "driver.py"), str(helpers / "page.txt"), page.name],
                          cwd=where, env=env, capture_output=True, text=True, timeout=900)


PAGES = [p for p in pages() if steps(p)]


def test_the_pages_have_examples() -> None:
    names = {p.relative_to(DOCS).as_posix() for p in PAGES}
    for page in ("getting-started.rst", "tutorial-first-pack.rst", "tutorial-web-app.rst", "writing-rules.rst",
                 "concepts.rst", "howto/call-from-an-app.rst", "howto/score-a-table.rst", "howto/debug-a-rule.rst",
                 "howto/change-a-cutoff.rst", "howto/pack-tests-in-ci.rst", "faq.rst"):
        assert page in names, page


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(DOCS).as_posix() for p in PAGES])
def test_a_reader_can_follow_the_page(page: Path, tmp_path: Path) -> None:
    pytest.importorskip("pandas", reason="the dask extra is not installed")
    where = tmp_path / "reader"
    where.mkdir()
    done = follow(page, where)
    assert done.returncode == 0, f"{page.name}, followed in an empty directory:\n{done.stdout}\n{done.stderr}"


def test_the_examples_do_not_lean_on_the_docs_build() -> None:
    """No example names this checkout or a variable only conf.py defines (the old ``DOCS`` trick)."""
    conf = (DOCS / "conf.py").read_text(encoding="utf-8")
    setup = re.search(r'doctest_global_setup = """(.*?)"""', conf, re.S)
    assert setup is not None
    names = set(re.findall(r"^(\w+)\s*=", setup.group(1), re.M)) | set(
        re.findall(r"import \w+ as (\w+)", setup.group(1)))
    assert all(n.startswith("_") for n in names), f"conf.py hands the examples names a reader lacks: {names}"
    offenders = []
    for page in PAGES:
        for step in steps(page):
            if step.kind == "doctest":
                for word in ("DOCS", "REPO", "docs/examples", "/work/", "examples/"):
                    if word in step.body:
                        offenders.append(f"{page.name}:{step.line}: {word}")
    assert not offenders, offenders


def test_a_broken_example_fails_the_reader(tmp_path: Path) -> None:
    """The follower really checks output: a page whose example is wrong fails."""
    page = tmp_path / "page.rst"
    page.write_text("Broken\n======\n\n.. doctest::\n\n   >>> import backcare\n   >>> backcare.recommend({})"
                    ".techniques\n   ('not', 'this')\n", encoding="utf-8")
    where = tmp_path / "reader"
    where.mkdir()
    assert follow(page, where).returncode == 1


# ---------------------------------------------------------------------------
# The tutorial's pack, built exactly as the page shows it


@pytest.fixture(scope="module")
def tutorial_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("tutorial") / "reader"
    where.mkdir()
    done = follow(DOCS / "tutorial-first-pack.rst", where)
    assert done.returncode == 0, done.stdout + done.stderr
    return where


def test_the_tutorial_builds_a_working_pack(tutorial_pack: Path) -> None:
    assert sorted(p.name for p in (tutorial_pack / "my-clinic").iterdir()) == [
        "clinic.toml", "examples.toml", "rules.toml", "safety.toml"]
    exe = Path(sys.executable).with_name("backcare")
    check = subprocess.run([str(exe), "rules", "check", "my-clinic"], cwd=tutorial_pack, capture_output=True,
                           text=True, timeout=300)
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run([str(exe), "rules", "test", "my-clinic", "--min-coverage", "100", "-v"],
                          cwd=tutorial_pack, capture_output=True, text=True, timeout=300)
    assert test.returncode == 0, test.stdout + test.stderr
    assert "2 passed, 0 failed; rule coverage 100% (2/2 rules fired)" in test.stdout
    assert (tutorial_pack / "pack-tests.xml").is_file()  # the CI step wrote its JUnit report


@pytest.mark.slow
def test_the_tutorials_pytest_run_gives_what_the_page_shows(tutorial_pack: Path) -> None:
    """The page shows ``python -m pytest -q`` passing the pack's two examples through the plugin."""
    shown = re.search(r"\$ python -m pytest -q\n(.*?)\n\n", (DOCS / "tutorial-first-pack.rst").read_text(), re.S)
    assert shown is not None
    last = textwrap.dedent(shown.group(1)).strip().splitlines()[-1]
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=tutorial_pack,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert last in done.stdout.splitlines()[-1], (last, done.stdout)
