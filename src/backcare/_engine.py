"""Evaluating a rulebase on durable-rules, safely inside a library.

What durable-rules needs from a library caller (measured, see
docs/limits and the project notes): its own ``Host`` with the background
timer threads switched off, facts rather than events, a fresh session per
call deleted afterwards, "no rule matched" read as "nothing fired",
exceptions from actions carried back to the caller, and a lock, because a
host is not safe for concurrent use.

The engine's only output is a :class:`Trace`: which rules fired on which
facts, and what was derived. Turning that into a recommendation is
``_reasoning``'s job, shared with the reference evaluator in ``_oracle`` so
the two can be compared exactly.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import math
import threading
from collections.abc import Iterable
from typing import Any

import attrs

from ._durable import engine as _durable
from ._errors import EngineError
from ._model import INPUT_OPERATORS, OPERATORS, Condition, Rule, Rulebase, Test
from ._profile import Scalar

Fact = tuple[str, Scalar]

# durable logs a traceback of its own when Ctrl-C lands in its bookkeeping,
# then re-raises it to us: the caller sees the KeyboardInterrupt, so stderr
# need not, unless the application configures logging for "durable".
logging.getLogger("durable").addHandler(logging.NullHandler())


@attrs.frozen
class Firing:
    """One rule firing on one combination of facts."""

    rule_id: str
    premises: tuple[Fact, ...]


@attrs.frozen
class Trace:
    """Everything that happened in one evaluation, in canonical order.

    Firings are sorted, so the trace is the same whatever order the engine
    fired rules in (it guarantees none).
    """

    given: tuple[Fact, ...]
    firings: tuple[Firing, ...]
    derived: tuple[Fact, ...]


#: Integers beyond this lose exactness where durable-rules compares them with doubles.
MAX_EXACT_INT = 2**53


def representable(value: object) -> bool:
    """Whether durable-rules reads ``value`` back exactly as Python holds it.

    Measured: a float written with an exponent but no decimal point (``1e-05``,
    ``1e+16``) is a parse error (code 204) in a fact and in a rule; a string
    with a lone surrogate cannot be encoded; integers compare exactly only up
    to 2**53 once a double is involved.
    """
    if isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -MAX_EXACT_INT <= value <= MAX_EXACT_INT
    if isinstance(value, float):
        return math.isfinite(value) and "." in repr(value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    return False


def _canonical(value: Scalar) -> Scalar:
    """An integral float as the int it equals, so 1 and 1.0 are one fact whichever comes first."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_EXACT_INT:
        return int(value)
    return value


def derived_facts(rule: Rule) -> list[Fact]:
    """The facts a rule asserts when it fires (derived facts, red flags and implied conditions)."""
    return [*((n, _canonical(v)) for n, v in rule.then.derive), *(("red_flags", f) for f in rule.then.flag),
            *(("conditions", c) for c in rule.then.condition)]


def condition_fact(cond: Condition) -> str:
    """The name of the fact a condition matches.

    ``lacks`` and ``given`` test the profile as given, which the engine cannot
    do (it sees only facts that exist), so they match facts computed before it
    runs (see :func:`input_facts`): ``field:lacks`` holding each tested id the
    list does not include, and ``field:given`` holding whether it is given.
    Real fact names never contain a colon.
    """
    op = cond.tests[0].op if cond.tests else ""
    return f"{cond.fact}:{op}" if op in INPUT_OPERATORS else cond.fact


def _compile_test(test: Test) -> dict[str, Any]:
    if test.op in ("eq", "contains", "lacks", "given"):
        return {"v": test.value}
    if test.op == "in":
        assert isinstance(test.value, tuple)
        return {"$or": [{"v": v} for v in test.value]}
    return {OPERATORS[test.op]: {"v": test.value}}


def compile_condition(cond: Condition) -> dict[str, Any]:
    """One rule condition as a durable-rules pattern over ``{n, v}`` facts."""
    return {"$and": [{"n": condition_fact(cond)}, *(_compile_test(t) for t in cond.tests)]}


def pattern_key(cond: Condition) -> str:
    """A canonical text of a compiled condition, to count identical patterns."""
    return json.dumps(compile_condition(cond), sort_keys=True)


class _QuietHost(_durable.Host):  # type: ignore[misc]
    """A Host without its timer threads.

    With them running, rules went silently missing, error 307 appeared and
    memory grew without bound; we use no timers, so nothing is lost.
    """

    def _run(self) -> None:
        return None


class _Action(_durable.Promise):  # type: ignore[misc]
    """A rule action whose exceptions reach the caller.

    durable's own Promise catches BaseException from an action and keeps only
    its text, so Ctrl-C inside a rule action came back as an EngineError.
    Ordinary exceptions are still caught by the action itself (see
    ``Engine._action``); KeyboardInterrupt and SystemExit pass through
    durable, which re-raises them as themselves.
    """

    def run(self, c: Any, complete: Any) -> None:
        self._func(c)
        complete(None)


class _Run:
    """Per-call state the rule actions write into (the lock makes it exclusive)."""

    __slots__ = ("sid", "known", "firings", "derived", "errors")

    def __init__(self, sid: str, given: Iterable[Fact]) -> None:
        self.sid = sid
        self.known: set[Fact] = set(given)
        self.firings: set[Firing] = set()
        self.derived: set[Fact] = set()
        self.errors: list[BaseException] = []


class Engine:
    """One compiled rulebase in one private durable-rules host."""

    RULESET = "backcare"

    def __init__(self, rulebase: Rulebase) -> None:
        self._lock = threading.Lock()
        self._counter = itertools.count()
        self._current: _Run | None = None
        self._live = 0
        self._host: _QuietHost | None = _QuietHost()
        definition: dict[str, Any] = {}
        for index, rule in enumerate(rulebase.rules):
            aliases = tuple(f"c{j}" for j in range(len(rule.when)))
            definition[f"r{index}"] = {
                "all": [{a: compile_condition(c)} for a, c in zip(aliases, rule.when)],
                "run": _Action(self._action(rule, aliases)),
            }
        # durable-rules keeps a session once any fact is asserted, counts it
        # against its ~1024-session limit, and segfaults deleting it unless an
        # action has run in it. A call in which no rule fired asserts this
        # sentinel fact, whose rule does nothing, before deleting the session.
        definition["sentinel"] = {"all": [{"a": {"n": _SENTINEL}}], "run": _sentinel_action}
        try:
            # register_rulesets mutates what it is given: hand it a copy.
            self._host.register_rulesets({self.RULESET: copy.copy(definition)})
        except Exception as exc:  # durable answers with bare error numbers
            raise EngineError(f"durable-rules refused the rulebase: {exc}") from exc

    def close(self) -> None:
        """Free the compiled ruleset inside durable-rules; later calls raise EngineError.

        durable keeps every ruleset in C memory (about 0.6 MB for the default
        rules) until it is deleted by handle; dropping the Python objects does
        not free it.
        """
        with self._lock:
            host, self._host = self._host, None
            if host is None:
                return
            ruleset = host.get_ruleset(self.RULESET)
            host._ruleset_directory.clear()  # the host's own references, and through them our actions
            host._ruleset_list.clear()
            _durable.durable_rules_engine.delete_ruleset(ruleset._handle)

    def _end(self, host: _QuietHost, run: _Run, *, quiet: bool) -> None:
        """Delete the call's session; ``quiet`` when another exception is already on its way."""
        try:
            if not run.firings:
                host.assert_fact(self.RULESET, {"sid": run.sid, "n": _SENTINEL, "v": True})
            host.delete_state(self.RULESET, run.sid)
        except Exception:
            if not quiet:
                raise
        finally:
            self._live -= 1
            self._current = None

    @property
    def closed(self) -> bool:
        return self._host is None

    @property
    def live_sessions(self) -> int:
        """Sessions created and not yet deleted (0 between calls)."""
        return self._live

    def _action(self, rule: Rule, aliases: tuple[str, ...]) -> Any:
        rule_id = rule.id
        new_facts = derived_facts(rule)
        single = aliases[0] if len(aliases) == 1 else None

        def action(c: Any) -> None:
            run = self._current
            assert run is not None
            try:
                matched = c._m
                if single is not None:  # most rules: one condition, nothing to sort
                    one = matched[single]
                    premises: tuple[Fact, ...] = ((one["n"], one["v"]),)
                else:
                    premises = tuple(sorted({(matched[a]["n"], matched[a]["v"]) for a in aliases}, key=_order))
                run.firings.add(Firing(rule_id, premises))
                for fact in new_facts:
                    if fact in run.known:
                        continue
                    run.known.add(fact)
                    run.derived.add(fact)
                    try:
                        c.assert_fact({"n": fact[0], "v": fact[1]})
                    except _durable.MessageNotHandledException:
                        pass  # a derived fact no rule matches: kept, nothing fires
            except Exception as exc:  # surfaced by evaluate(), never swallowed
                run.errors.append(exc)

        return action

    def evaluate(self, facts: Iterable[Fact]) -> Trace:
        """Run the rules to a fixpoint on ``facts`` and return what happened."""
        given = tuple(sorted(set(facts), key=_order))
        with self._lock:
            host = self._host
            if host is None:
                raise EngineError("this Recommender is closed: build a new one")
            sid = str(next(self._counter))
            run = _Run(sid, given)
            self._current = run
            state: Any = None
            self._live += 1
            try:
                # Facts one at a time: a batch with any fact that matches no
                # condition is rejected whole, before its actions run.
                for n, v in given:
                    try:
                        state = host.assert_fact(self.RULESET, {"sid": sid, "n": n, "v": v})
                    except _durable.MessageNotHandledException:
                        pass  # no condition tests this fact: nothing fires
                    if isinstance(state, dict) and state.get("exception"):
                        break
            except BaseException as exc:
                self._end(host, run, quiet=True)
                if isinstance(exc, Exception):
                    raise EngineError(f"durable-rules failed while evaluating: {exc}") from exc
                raise  # Ctrl-C and SystemExit propagate as themselves
            else:
                try:
                    self._end(host, run, quiet=False)
                except Exception as exc:
                    raise EngineError(f"durable-rules failed while evaluating: {exc}") from exc
        if run.errors:
            raise EngineError(f"a rule action failed: {run.errors[0]!r}") from run.errors[0]
        if isinstance(state, dict) and state.get("exception"):
            raise EngineError(f"durable-rules reported an error: {state['exception']}")
        return Trace(
            given=given,
            firings=tuple(sorted(run.firings, key=_firing_order)),
            derived=tuple(sorted(run.derived, key=_order)),
        )


_SENTINEL = "_session"


def _sentinel_action(c: Any) -> None:
    """Does nothing: running at all is what makes the session deletable."""


def _order(fact: Fact) -> tuple[str, str, str]:
    """Sort key for facts whose values may be of mixed types."""
    name, value = fact
    return (name, type(value).__name__, repr(value))


def _firing_order(f: Firing) -> tuple[str, list[tuple[str, str, str]]]:
    return (f.rule_id, [_order(p) for p in f.premises])
