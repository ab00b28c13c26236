"""Robustness: whatever pack or profile backcare is fed, it answers or refuses cleanly.

Every case runs in a worker process (``fuzz_worker.py``), because durable-rules
is C code that can hang or crash the process past its limits. A case passes
when the pack loads and every profile gives a result or a ``ProfileError``, or
when the pack is refused with a ``RuleError`` of backcare's own (not a wrapped
engine error number). A crash, a hang, any other exception, or an engine error
number fails the test and names the case.
"""

from __future__ import annotations

import math
import os
import pickle
import select
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import backcare

from . import packgen
from .strategies import profiles

WORKER = Path(__file__).with_name("fuzz_worker.py")
TIMEOUT = 60.0  # seconds for one case; past it the case hung


class Worker:
    """The worker process, restarted after a crash or a hang."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def _start(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
        return subprocess.Popen([sys.executable, str(WORKER), str(self.workdir)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._start()
        proc = self.proc
        assert proc.stdin and proc.stdout
        data = pickle.dumps(request)
        try:
            proc.stdin.write(struct.pack(">I", len(data)) + data)
            proc.stdin.flush()
            head = self._read(proc, 4)
            return pickle.loads(self._read(proc, struct.unpack(">I", head)[0]))
        except (BrokenPipeError, EOFError, TimeoutError) as exc:
            proc.kill()
            proc.wait()
            self.proc = None
            stderr = proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
            what = "hung" if isinstance(exc, TimeoutError) else f"died with exit code {proc.returncode}"
            return {"load": "crash", "detail": f"worker {what}\n{stderr}"}

    @staticmethod
    def _read(proc: subprocess.Popen[bytes], n: int) -> bytes:
        assert proc.stdout
        out = b""
        while len(out) < n:
            ready, _, _ = select.select([proc.stdout], [], [], TIMEOUT)
            if not ready:
                raise TimeoutError
            chunk = os.read(proc.stdout.fileno(), n - len(out))
            if not chunk:
                raise EOFError
            out += chunk
        return out

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Any:
    w = Worker(tmp_path_factory.mktemp("fuzz"))
    yield w
    w.close()


def _assert_clean(reply: dict[str, Any], case: str) -> list[tuple[str, str]]:
    assert reply["load"] in ("ok", "rule_error"), f"{case}\n{reply['load']}: {reply.get('detail')}"
    results = reply.get("results", [])
    for outcome, detail in results:
        assert outcome in ("ok", "profile_error"), f"{case}\n{outcome}: {detail}"
    return results


fuzz = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


# ---------------------------------------------------------------------------
# Rule packs.


@st.composite
def _mutated(draw: st.DrawFn) -> str:
    """A valid pack's text with a few random edits: syntax, keys, values, references."""
    text = draw(packgen.packs()).text
    for _ in range(draw(st.integers(1, 4))):
        if not text:
            break
        i = draw(st.integers(0, len(text) - 1))
        edit = draw(st.sampled_from(["delete", "insert", "replace", "swap-word"]))
        if edit == "delete":
            text = text[:i] + text[i + draw(st.integers(1, 12)):]
        elif edit == "insert":
            text = text[:i] + draw(st.sampled_from(
                ["\"", "[", "]", "{", "=", "\n", "x", "_", "1e-05", "-", "true", "\\u0000", "1e400", "nan"]
            )) + text[i:]
        elif edit == "replace":
            text = text[:i] + draw(st.text(min_size=1, max_size=3)) + text[i + 1:]
        else:
            words = ["ge", "contains", "in", "score", "derive", "exclude", "t0", "f0", "d0", "safety",
                     "when", "then", "\"low\"", "true", "2", "[\"x\"]", "max_pressure", "only"]
            a, b = draw(st.sampled_from(words)), draw(st.sampled_from(words))
            text = text.replace(a, b, 1)
    return text


@given(text=_mutated(), profiles=st.lists(profiles(), max_size=3))
@fuzz
def test_broken_packs_load_or_are_refused_cleanly(worker: Worker, text: str, profiles: list[Any]) -> None:
    _assert_clean(worker.ask({"pack": text, "profiles": profiles}), f"pack:\n{text}")


@given(pack=packgen.packs(), data=st.data())
@fuzz
def test_generated_packs_load_and_recommend(worker: Worker, pack: packgen.Pack, data: st.DataObject) -> None:
    cases = [data.draw(packgen.pack_profiles(pack)) for _ in range(3)]
    reply = worker.ask({"pack": pack.text, "profiles": cases})
    results = _assert_clean(reply, f"pack:\n{pack.text}")
    assert reply["load"] == "ok", reply["detail"]
    assert [o for o, _ in results] == ["ok"] * len(cases)


@pytest.mark.slow
@pytest.mark.parametrize("kind", packgen.OVERSIZE)
def test_engine_limits_are_refused_before_the_engine_sees_them(worker: Worker, kind: str) -> None:
    """At each limit the pack works; one past it is a RuleError; far past it too, never a crash or hang."""
    limit = packgen.LIMITS[kind]
    far = {"conditions": 40, "shared": 300, "fact_names": 700, "value_tests": 80, "in_values": 700,
           "combinations": 60, "rules": 4200}[kind]
    for n, expected in ((limit, "ok"), (limit + 1, "rule_error"), (far, "rule_error")):
        text, profile = packgen.oversized(kind, n)
        reply = worker.ask({"pack": text, "profiles": [profile], "include_default": False})
        _assert_clean(reply, f"{kind} at {n}")
        assert reply["load"] == expected, f"{kind} at {n}: {reply.get('detail', '')[:500]}"
        if expected == "rule_error":
            assert "at most" in reply["detail"], reply["detail"]
        else:
            assert reply["results"][0][0] == "ok"


@given(kind=st.sampled_from(packgen.OVERSIZE), data=st.data())
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_packs_of_any_size_load_exactly_up_to_the_limit(worker: Worker, kind: str, data: st.DataObject) -> None:
    limit = packgen.LIMITS[kind]
    n = data.draw(st.integers(1, limit * 3 // 2 + 2), label="size")
    text, profile = packgen.oversized(kind, n)
    reply = worker.ask({"pack": text, "profiles": [profile], "include_default": False})
    _assert_clean(reply, f"{kind} at {n}")
    assert reply["load"] == ("ok" if n <= limit else "rule_error"), f"{kind} at {n}: {reply.get('detail')}"


# ---------------------------------------------------------------------------
# Profiles of every wrong type and size.

_anything = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=300),
              st.binary(max_size=10), st.just(math.inf), st.integers(min_value=2**60)),
    lambda inner: st.one_of(st.lists(inner, max_size=80), st.dictionaries(st.text(max_size=5), inner, max_size=4),
                            st.frozensets(st.integers(), max_size=3), st.tuples(inner)),
    max_leaves=90,
)
_keys = st.one_of(st.sampled_from(sorted(backcare.Recommender().fields)),
                  st.text(max_size=20), st.integers())


@given(st.one_of(
    st.dictionaries(_keys, _anything, max_size=6),
    profiles().flatmap(lambda p: st.dictionaries(_keys, _anything, max_size=2).map(lambda extra: {**p, **extra})),
    _anything,
))
@fuzz
def test_any_profile_gives_a_result_or_a_profile_error(worker: Worker, profile: Any) -> None:
    _assert_clean(worker.ask({"pack": None, "profiles": [profile]}), f"profile: {profile!r}"[:2000])
