"""Issue 13, item 6: hostile input is refused in bounded time and memory, with one line.

Each command-line case runs in a child process whose address space is
capped (RLIMIT_AS) and which is killed after a timeout: before this issue
these printed tracebacks, grew to gigabytes or hung. The Python API cases
raise ProfileError or RuleError with short messages.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import backcare
from backcare import ProfileError, Recommender, RuleError
from backcare._text import QUOTE_LIMIT, quote

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "examples" / "profile.json"
MEMORY_LIMIT = 1 << 30  # bytes of address space; the cases used several GiB before
TIMEOUT = 120  # seconds; each case takes well under 5


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def backcare_cli(args: list[str], cwd: Path, stdin: Any = subprocess.DEVNULL) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "import sys; from backcare._cli import main; sys.exit(main())", *args]
    return subprocess.run(command, cwd=cwd, stdin=stdin, capture_output=True, text=True, timeout=TIMEOUT,
                          preexec_fn=_limit_memory)


def _rule(i: int, field: str) -> str:
    return (f'[[rule]]\nid = "bulk.r{i}"\ntitle = "t"\nwhen = {{ {field} = true }}\n'
            f'then = {{ score = {{ kneading = 1 }} }}\nbecause = "x"\nsource = "furlan2015"\nevidence = "low"\n')


def make_inputs(d: Path) -> None:
    """Every input the issue measured, written into ``d``."""
    (d / "not-utf8.json").write_bytes(b'{"goal": "relax\xff"}')
    (d / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (d / "big-int.json").write_text('{"pain_weeks": ' + "9" * 5000 + "}")
    (d / "deep.toml").write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    (d / "big-int.toml").write_text("x = " + "9" * 5000 + "\n")
    (d / "tables.toml").write_text("[" + ".".join(["a"] * 40_000) + "]\n")  # 80 KB: 6 GB and 18 s before
    (d / "dotted.toml").write_text(".".join(["a"] * 40_000) + " = 1\n")
    (d / "disable.toml").write_text("disable = [" + ", ".join(['"x"'] * 2_000_000) + "]\n")  # 44 s before
    # 2,000 unknown ids beside 3,900 rules: 119 s of did-you-mean before.
    fields = "".join(f'[[field]]\nname = "f{i}"\ntype = "bool"\ndescription = "x"\n' for i in range(40))
    ids = ", ".join(f'"unknown.rule-{i}"' for i in range(2000))
    rules = "".join(_rule(i, f"f{i % 40}") for i in range(3900 - len(Recommender().rulebase.rules)))
    (d / "unknown-ids.toml").write_text(f"disable = [{ids}]\n" + fields + rules)
    (d / "loop").mkdir()
    (d / "loop" / "back").symlink_to("..")
    os.mkfifo(d / "fifo")


CASES = {
    "non-UTF-8 profile": (["recommend", "not-utf8.json"], None, "is not UTF-8 text: byte 0xff at line 1"),
    "JSON nested 100k deep": (["recommend", "deep.json"], None, "nested more than 32 levels deep"),
    "5,000-digit integer in JSON": (["recommend", "big-int.json"], None, "a number of 5000 digits"),
    "TOML pack nested deep": (["recommend", "--rules", "deep.toml", str(PROFILE)], None, "nested more than 32"),
    "TOML pack nested deep, checked": (["rules", "check", "deep.toml"], None, "nested more than 32"),
    "5,000-digit integer in TOML": (["recommend", "--rules", "big-int.toml", str(PROFILE)], None,
                                    "a number of 5000 digits"),
    "5,000-digit integer in TOML, checked": (["rules", "check", "big-int.toml"], None, "a number of 5000 digits"),
    "rules check on a symlink loop": (["rules", "check", "loop"], None, "symbolic link loop"),
    "recommend /dev/zero": (["recommend", "/dev/zero"], None, "is a character device, not a regular file"),
    "stdin from /dev/zero": (["recommend", "-"], "/dev/zero", "standard input is larger than 1 MiB"),
    "--rules /dev/zero": (["recommend", "--rules", "/dev/zero", str(PROFILE)], None, "this is a character device"),
    "a FIFO with no writer": (["recommend", "fifo"], None, "is a FIFO, not a regular file"),
    "a FIFO as a pack": (["rules", "check", "fifo"], None, "this is a FIFO"),
    "40,000 tables deep": (["recommend", "--rules", "tables.toml", str(PROFILE)], None, "nested more than 32"),
    "a 40,000-part dotted key": (["rules", "check", "dotted.toml"], None, "nested more than 32"),
    "a 2,000,000-entry disable list": (["recommend", "--rules", "disable.toml", str(PROFILE)], None,
                                       "larger than 4 MiB (set BACKCARE_MAX_PACK_BYTES"),
    "2,000 unknown ids beside 3,900 rules": (["recommend", "--rules", "unknown-ids.toml", str(PROFILE)], None,
                                             "(and 1,999 more problems at this line and key"),
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("hostile")
    make_inputs(d)
    return d


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_hostile_input_gives_exit_2_and_one_line(inputs, case):
    args, stdin_path, fragment = CASES[case]
    started = time.monotonic()
    if stdin_path:
        with open(stdin_path, "rb") as stdin:
            proc = backcare_cli(args, inputs, stdin)
    else:
        proc = backcare_cli(args, inputs)
    took = time.monotonic() - started
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith("backcare: error: ") and fragment in lines[0], lines[0]
    assert len(lines[0]) < 400, lines[0]
    assert took < TIMEOUT


@pytest.mark.slow
def test_the_caps_are_settable(inputs, tmp_path):
    small = tmp_path / "p.json"
    small.write_text('{"stiffness": true}')
    env = {**os.environ, "BACKCARE_MAX_PROFILE_BYTES": "10"}
    command = [sys.executable, "-c", "import sys; from backcare._cli import main; sys.exit(main())"]
    proc = subprocess.run([*command, "recommend", str(small)], capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "larger than 10 bytes (set BACKCARE_MAX_PROFILE_BYTES" in proc.stderr
    env = {**os.environ, "BACKCARE_MAX_PROFILE_BYTES": "lots"}
    proc = subprocess.run([*command, "recommend", str(small)], capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "BACKCARE_MAX_PROFILE_BYTES must be a positive whole number" in proc.stderr


def test_pack_size_cap_in_python(tmp_path, monkeypatch):
    pack = tmp_path / "p.toml"
    pack.write_text("# a comment\n" * 100)
    with pytest.raises(RuleError, match="larger than 1,000 bytes"):
        Recommender([pack], max_pack_bytes=1000)
    monkeypatch.setenv("BACKCARE_MAX_PACK_BYTES", "1000")
    with pytest.raises(RuleError) as info:
        Recommender([pack])
    (problem,) = info.value.problems  # the default pack, which ships with backcare, is not capped
    assert problem.file == str(pack) and "set BACKCARE_MAX_PACK_BYTES to allow more" in problem.message
    monkeypatch.delenv("BACKCARE_MAX_PACK_BYTES")
    assert Recommender([pack], max_pack_bytes=2000).rulebase.rules
    with pytest.raises(ValueError, match="positive whole number"):
        Recommender([pack], max_pack_bytes=0)


def test_loader_refuses_hostile_packs_with_one_problem(tmp_path):
    make_inputs(tmp_path)
    for name, fragment in [("deep.toml", "nested more than 32"), ("big-int.toml", "5000 digits"),
                           ("tables.toml", "nested more than 32"), ("loop", "symbolic link loop"),
                           ("fifo", "a FIFO"), ("not-utf8.json", "not UTF-8")]:
        with pytest.raises(RuleError) as info:
            Recommender([tmp_path / name])
        assert len(info.value.problems) == 1 and fragment in str(info.value), name
        assert info.value.problems[0].kind == "input"


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def _shared(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value, value]  # 2**depth items when printed in full
    return value


def _self_referencing() -> list[Any]:
    value: list[Any] = []
    value.append(value)
    return value


@pytest.mark.parametrize(("profile", "fragment"), [
    ({"pain_weeks": 10**5000}, "an integer of about 5001 digits"),  # ValueError before
    ({"red_flags": _nested(100_000)}, "red_flags[0]"),  # RecursionError before
    ({"pain_weeks": _shared(60)}, "field 'pain_weeks'"),  # hung building the repr before
    ({"conditions": _self_referencing()}, "field 'conditions[0]'"),
    ({"x" * 10_000_000: 1}, "unknown profile field 'xxxx"),  # 10 MB in the message before
    ({10**5000: 1}, "profile keys must be strings"),
], ids=["huge int", "deep list", "shared list", "self-referencing list", "10 MB key", "huge int key"])
def test_python_api_refuses_with_a_short_profile_error(profile, fragment):
    started = time.monotonic()
    with pytest.raises(ProfileError) as info:
        backcare.recommend(profile)
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert fragment in message and len(message) < 600


def test_quote_is_bounded_whatever_it_is_given():
    for value in [10**5000, "x" * 10**7, _nested(100_000), _shared(60), _self_referencing(),
                  {"k" * 10**6: [1] * 10**6}, b"\xff" * 10**6, (1,), set(), frozenset({1})]:
        text = quote(value)
        assert len(text) <= QUOTE_LIMIT, text
    assert quote("short") == "'short'" and quote((1,)) == "(1,)" and quote([1, "a"]) == "[1, 'a']"
