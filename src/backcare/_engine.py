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
import weakref
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import attrs

from ._durable import engine as _durable
from ._errors import EngineError
from ._model import INPUT_OPERATORS, OPERATORS, Condition, Rule, Rulebase, Test
from ._profile import Scalar

Fact = tuple[str, Scalar]
FactKey = tuple[str, type, Scalar]


def fact_key(fact: Fact) -> FactKey:
    """A fact for keying memos: equal only for facts a result shows alike.

    Facts themselves compare with Python equality, as the engine matches
    them (``1 == 1.0 == True``, ``0.0 == -0.0``); a memo keyed by them would
    give one value's words or premise to the other.
    """
    name, value = fact
    kind = type(value)
    return (name, kind, repr(value) if kind is float else value)

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


# durable-rules' C core, which the host's Python layer wraps.
_core = _durable.durable_rules_engine

#: Result codes of the C core's assert calls (``rules.h``).
_HANDLED, _NOT_HANDLED = 0, 1


class _Run:
    """Per-call state the rule actions write into."""

    __slots__ = ("head", "known", "firings", "derived", "sent", "pending")

    def __init__(self, head: str, given: Iterable[Fact]) -> None:
        self.head = head  # the start of every fact's JSON in this session
        self.known: set[Fact] = set(given)
        self.firings: set[tuple[str, tuple[Fact, ...]]] = set()
        self.derived: set[Fact] = set()
        self.sent: list[str] = []  # facts asserted, as JSON, to retract afterwards
        self.pending: list[str] = []  # derived facts to assert once the actions under way are done


def _json(value: Scalar) -> str:
    return json.dumps(value, ensure_ascii=False)


class Engine:
    """One compiled rulebase in one private durable-rules host.

    The host compiles the rules and owns them; evaluation talks to its C
    core directly. Measured per call on the default rules, the host's Python
    layer cost more than the C core: it re-encoded every fact as JSON, and
    for every firing built a closure object, read the clock twice, wrote the
    session state back and decoded it again. Backcare uses neither the
    session state nor action leases, so the calls that keep them are left
    out; the C calls and their order are the host's own (``assert_facts``,
    ``start_action_for_state``, ``complete_and_start_action``,
    ``abandon_action``, ``retract_facts``, ``delete_state``).

    Of the C core's own time, creating a session and deleting it took about
    two thirds (it allocates and clears per-session memory for every node of
    the rule network: about 1.4 MB for the default rules). So one session is
    reused: each call asserts its facts, runs the rules, and retracts every
    fact it asserted, leaving the session as empty as it found it. A session
    that anything interrupted is deleted, and a fresh one is started every
    :attr:`SESSION_CALLS` calls anyway, so that nothing the C core might keep
    per session can accumulate. At most :data:`MAX_IDLE_SESSIONS` engines in
    a process keep an idle session at once (the least recently used gives
    its up), so a program that builds many recommenders does not hold a
    session for each until the garbage collector gets to them.
    """

    RULESET = "backcare"
    SESSION_CALLS = 4096

    def __init__(self, rulebase: Rulebase) -> None:
        self._lock = threading.Lock()
        self._counter = itertools.count()
        self._live = 0
        self._host: _QuietHost | None = _QuietHost()
        definition: dict[str, Any] = {}
        #: Fact names some condition tests: any other fact can match nothing, so it is not sent.
        self._tested = frozenset(condition_fact(c) for rule in rulebase.rules for c in rule.when)
        self._actions: dict[str, Any] = {}
        for index, rule in enumerate(rulebase.rules):
            aliases = tuple(f"c{j}" for j in range(len(rule.when)))
            definition[f"r{index}"] = {
                "all": [{a: compile_condition(c)} for a, c in zip(aliases, rule.when)],
                "run": _sentinel_action,  # never run by the host: evaluate() runs self._actions
            }
            self._actions[f"r{index}"] = self._action(rule, aliases)
        # durable-rules keeps a session once any fact is asserted and counts
        # it against its ~1024-session limit; deleting one segfaults unless an
        # action has run in it (the C core leaves the action context of a new
        # session uninitialised until then). Every call asserts this sentinel,
        # whose rule does nothing, with its facts, so one always has.
        definition["sentinel"] = {"all": [{"a": {"n": _SENTINEL}}], "run": _sentinel_action}
        self._actions["sentinel"] = None
        try:
            # register_rulesets mutates what it is given: hand it a copy.
            self._host.register_rulesets({self.RULESET: copy.copy(definition)})
        except Exception as exc:  # durable answers with bare error numbers
            raise EngineError(f"durable-rules refused the rulebase: {exc}") from exc
        self._handle: int = self._host.get_ruleset(self.RULESET)._handle
        self._texts: dict[FactKey, str] = {}
        self._sid: str | None = None  # the session kept for reuse, empty between calls
        self._session_calls = 0

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
            if self._sid is not None:  # deleting the ruleset frees no session's memory
                _core.delete_state(ruleset._handle, self._sid)
                self._sid = None
            with _idle_lock:
                _idle.pop(id(self), None)
            host._ruleset_directory.clear()  # the host's own references
            host._ruleset_list.clear()
            _core.delete_ruleset(ruleset._handle)

    @property
    def closed(self) -> bool:
        return self._host is None

    @property
    def live_sessions(self) -> int:
        """Sessions holding a call's facts (0 between calls: the session kept for reuse is empty)."""
        return self._live

    def _text(self, fact: Fact) -> str:
        """A fact as the JSON the C core reads, less its session id: ``"n":...,"v":...}``."""
        name, value = fact
        key = fact_key(fact)
        found = self._texts.get(key)
        if found is None:
            if len(self._texts) >= 1 << 16:
                self._texts.clear()
            found = self._texts[key] = f'"n":{_json(name)},"v":{_json(value)}}}'
        return found

    def _action(self, rule: Rule, aliases: tuple[str, ...]) -> Any:
        rule_id = rule.id
        handle_of = self
        # Derived facts no condition tests can match nothing: recorded, never sent. The others
        # are asserted together once the actions under way are done (see _run).
        new_facts = [(fact, fact[0] in self._tested) for fact in derived_facts(rule)]
        single = aliases[0] if len(aliases) == 1 else None

        def action(matched: dict[str, Any], run: _Run) -> None:
            if single is not None:  # most rules: one condition, nothing to sort
                one = matched[single]
                premises: tuple[Fact, ...] = ((one["n"], one["v"]),)
            else:
                premises = tuple(sorted({(matched[a]["n"], matched[a]["v"]) for a in aliases}, key=_order))
            run.firings.add((rule_id, premises))  # a plain tuple hashes in C; Firing objects come at the end
            for fact, tested in new_facts:
                if fact in run.known:
                    continue
                run.known.add(fact)
                run.derived.add(fact)
                if tested:
                    run.pending.append(run.head + handle_of._text(fact))

        return action

    def evaluate(self, facts: Iterable[Fact]) -> Trace:
        """Run the rules to a fixpoint on ``facts`` and return what happened."""
        given = tuple(sorted(set(facts), key=_order))
        with self._lock:
            if self._host is None:
                raise EngineError("this Recommender is closed: build a new one")
            handle = self._handle
            fresh = self._sid is None or self._session_calls >= self.SESSION_CALLS
            if fresh:
                if self._sid is not None:
                    self._delete(handle, self._sid)
                self._sid = str(next(self._counter))
                self._session_calls = 0
            sid = self._sid
            assert sid is not None
            self._session_calls += 1
            run = _Run(f'{{"sid":"{sid}",', given)
            # One call for every fact some condition tests (the C core asserts
            # each, whether or not a condition holds for it), and in a new
            # session the sentinel.
            sent = [run.head + self._text(f) for f in given if f[0] in self._tested]
            if fresh:
                sent.append(run.head + _SENTINEL_TEXT)
            self._live += 1
            try:
                if sent:
                    self._run(handle, "[" + ",".join(sent) + "]", run)
                    sent += run.sent
                    code = _core.retract_facts(handle, "[" + ",".join(sent) + "]")[0]
                    if code not in (_HANDLED, _NOT_HANDLED):
                        raise EngineError(f"durable-rules answered {code} when the facts were retracted")
            except BaseException as exc:
                self._sid = None
                self._abort(handle, sid)
                if isinstance(exc, _ActionFailed):
                    cause = exc.args[0]
                    raise EngineError(f"a rule action failed: {cause!r}") from cause
                if isinstance(exc, EngineError):
                    raise
                if isinstance(exc, Exception):
                    raise EngineError(f"durable-rules failed while evaluating: {exc}") from exc
                raise  # Ctrl-C and SystemExit propagate as themselves
            finally:
                self._live -= 1
        _kept_idle(self)
        return Trace(
            given=given,
            firings=_sorted_firings(run.firings),
            derived=tuple(sorted(run.derived, key=_order)),
        )

    def _run(self, handle: int, batch: str, run: _Run) -> None:
        """Assert ``batch`` and run every action it causes, until none is left.

        Facts derived by the actions are asserted in one batch each time the
        actions under way run out, rather than one call each from inside an
        action: the rules reach the same fixpoint (a rule fires once per
        combination of facts whenever they arrive) in fewer calls.
        """
        decode = _decode
        actions = self._actions
        while batch:
            code, offset = _core.assert_facts(handle, batch)
            if code not in (_HANDLED, _NOT_HANDLED):  # not handled: some fact matches no condition
                raise EngineError(f"durable-rules answered {code} to the facts {batch[:200]}")
            started = _core.start_action_for_state(handle, offset)
            message: str | None = started[1] if started else None
            while message is not None:
                for name, matched in decode(message)[0].items():
                    action = actions[name]
                    if action is not None:
                        try:
                            action(matched, run)
                        except Exception as exc:
                            raise _ActionFailed(exc) from exc
                message = _core.complete_and_start_action(handle, offset)
            batch = ""
            if run.pending:
                batch = "[" + ",".join(run.pending) + "]"
                run.sent += run.pending
                run.pending.clear()

    def _release(self) -> None:
        """Give up the idle session, unless a call is using it (see :func:`_kept_idle`)."""
        if not self._lock.acquire(blocking=False):
            return
        try:
            if self._sid is not None and self._host is not None:
                sid, self._sid = self._sid, None
                _core.delete_state(self._handle, sid)
        except Exception:
            pass  # the next call starts a new session either way
        finally:
            self._lock.release()

    def _delete(self, handle: int, sid: str) -> None:
        try:
            _core.delete_state(handle, sid)
        except Exception as exc:
            raise EngineError(f"durable-rules failed to delete a session: {exc}") from exc

    def _abort(self, handle: int, sid: str) -> None:
        """Delete a session that an exception interrupted, wherever it stopped.

        A session may be deleted only once an action has started in it (see
        the sentinel). Asserting one more sentinel gives the session's offset
        even if the first assert never returned it, and leaves an action to
        start; starting and abandoning it leaves nothing half done.
        """
        try:
            _, offset = _core.assert_fact(handle, f'{{"sid":"{sid}",{_ABORT_TEXT}')
            try:
                _core.start_action_for_state(handle, offset)
            finally:
                _core.abandon_action(handle, offset)
                _core.delete_state(handle, sid)
        except Exception:
            pass  # another exception is already on its way


#: How many engines in the process may keep an idle session at once (see Engine).
MAX_IDLE_SESSIONS = 4
_idle: OrderedDict[int, weakref.ref[Engine]] = OrderedDict()  # least recently used first
_idle_lock = threading.Lock()


def _kept_idle(engine: Engine) -> None:
    """Note that ``engine`` keeps an idle session; past the bound, the least recently used gives its up.

    Called with no engine's lock held; an engine in use is skipped, not waited for.
    """
    if engine._sid is None:
        return
    victims = []
    with _idle_lock:
        _idle[id(engine)] = weakref.ref(engine)
        _idle.move_to_end(id(engine))
        while len(_idle) > MAX_IDLE_SESSIONS:
            victims.append(_idle.popitem(last=False)[1]())
    for victim in victims:
        if victim is not None and victim is not engine:
            victim._release()


_SENTINEL = "_session"
#: Decodes one action's message (``json.loads`` less its checks for surrounding whitespace).
_decode = json.JSONDecoder().raw_decode
_SENTINEL_TEXT = f'"n":"{_SENTINEL}","v":true}}'
_ABORT_TEXT = f'"n":"{_SENTINEL}","v":false}}'


class _ActionFailed(Exception):
    """Carries an exception out of a rule action, to tell it from the C core's own errors."""


def _sentinel_action(c: Any) -> None:
    """Does nothing: running at all is what makes the session deletable."""


def _order(fact: Fact) -> tuple[str, str, str]:
    """Sort key for facts whose values may be of mixed types."""
    name, value = fact
    return (name, type(value).__name__, repr(value))


def _sorted_firings(firings: Iterable[tuple[str, tuple[Fact, ...]]]) -> tuple[Firing, ...]:
    """``(rule id, premises)`` pairs as :class:`Firing` objects in a trace's canonical order.

    That is by rule id, then by the premises' :func:`_order`; the premises'
    texts are compared only between firings of one rule (most rules fire
    once). The engine, the reference evaluator and assembled traces all sort
    with it, so their traces compare equal.
    """
    by_rule = sorted(firings, key=_rule_id)
    out: list[Firing] = []
    i, n = 0, len(by_rule)
    while i < n:
        j = i + 1
        while j < n and by_rule[j][0] == by_rule[i][0]:
            j += 1
        group = by_rule[i:j] if j == i + 1 else sorted(by_rule[i:j], key=_premise_order)
        out += (Firing(rule_id, premises) for rule_id, premises in group)
        i = j
    return tuple(out)


def _rule_id(firing: tuple[str, tuple[Fact, ...]]) -> str:
    return firing[0]


def _premise_order(firing: tuple[str, tuple[Fact, ...]]) -> list[tuple[str, str, str]]:
    return [_order(p) for p in firing[1]]
