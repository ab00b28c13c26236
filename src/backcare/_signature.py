"""Signatures: what the rules can see of a profile, so that profiles they cannot tell apart share one evaluation.

No rule can tell ``pain_weeks = 20`` from ``pain_weeks = 30`` when every
condition on ``pain_weeks`` holds for both or for neither. What the engine
does with a profile depends only on which of the rulebase's conditions each
of its facts meets, so a profile's *signature* lists, for every input fact
(profile fields, computed facts, the facts of ``lacks`` / ``given`` tests)
that some condition holds for, the set of conditions it meets. The
conditions are the ones the engine is given (:func:`backcare._engine.compile_condition`),
read with the engine's own comparison (:func:`backcare._oracle.compare`).

A result cached under a signature is then *instantiated* for another
profile with the same signature: its profile echo and the values of the
given facts in its premises become the new profile's. What may differ
between two profiles with one signature is therefore kept to what
instantiation can put right, and everything else is part of the signature
by value:

* a fact no condition holds for cannot fire anything and appears nowhere in
  a result but the profile echo: it is left out;
* a number (not a boolean) is keyed by the conditions it meets, so
  ``pain_weeks`` 20 and 30 share a signature;
* a boolean or a string is keyed by its value as well: they are few, and a
  result shows them in more places than premises (red flags by id, for
  example), so sharing them would buy little and risk much;
* a fact equal to one some rule can derive is keyed by its value, because
  the engine then does not derive it again.

Facts of one name are listed in the order results sort them, so the
instantiated result keeps the order a fresh evaluation would give.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from ._engine import (
    Fact,
    Trace,
    _order,
    _sorted_firings,
    compile_condition,
    condition_fact,
    derived_facts,
    pattern_key,
)
from ._model import OPERATORS, Rulebase
from ._oracle import compare
from ._profile import Scalar
from ._reasoning import fact_text
from ._result import FrozenMapping, Premise, Recommendation

#: One signature entry: a fact's name, the conditions it meets (a bit set), and its value where it must match.
Entry = tuple[str, int, "tuple[str, str] | None"]
Key = tuple[Entry, ...]

#: durable-rules' operator names back to backcare's (``$gt`` -> ``gt``); ``$or`` is an ``in`` list.
_OPS = {durable: op for op, durable in OPERATORS.items() if durable and durable != "$or"}


def _test(part: dict[str, Any]) -> Callable[[Scalar], bool]:
    """One test of a compiled pattern as a predicate, with the engine's comparison."""
    ((key, arg),) = part.items()
    if key == "v":
        return lambda x: compare("eq", x, arg)
    if key == "$or":
        tests = [_test(p) for p in arg]
        return lambda x: any(t(x) for t in tests)
    op = _OPS[key]
    ((vkey, value),) = arg.items()
    assert vkey == "v", part
    return lambda x: compare(op, x, value)


def _pattern(pattern: dict[str, Any]) -> tuple[str, Callable[[Scalar], bool]]:
    """A compiled condition (``{"$and": [{"n": name}, test, ...]}``) as its fact name and a predicate."""
    name: str | None = None
    tests: list[Callable[[Scalar], bool]] = []
    for part in pattern["$and"]:
        if "n" in part and len(part) == 1:
            name = part["n"]
        else:
            tests.append(_test(part))
    assert name is not None, pattern
    return name, lambda x: all(t(x) for t in tests)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Signatures:
    """Per rulebase: the conditions on each fact name, and the facts rules can derive."""

    #: Bound on the memo of (fact, conditions met); it is cleared when full.
    MAX_MEMO = 1 << 16

    def __init__(self, rb: Rulebase) -> None:
        self.rb = rb
        tests: dict[str, dict[str, Callable[[Scalar], bool]]] = {}
        for rule in rb.rules:
            for cond in rule.when:
                name, predicate = _pattern(compile_condition(cond))
                tests.setdefault(name, {}).setdefault(pattern_key(cond), predicate)
        #: Fact name -> the distinct conditions on it, in a fixed order (bit i of an entry is condition i).
        self.tests: dict[str, tuple[Callable[[Scalar], bool], ...]] = {
            name: tuple(by_key[k] for k in sorted(by_key)) for name, by_key in tests.items()
        }
        self.derivable: frozenset[Fact] = frozenset(f for rule in rb.rules for f in derived_facts(rule))
        self._met: dict[tuple[str, type, Scalar], int] = {}
        #: A premise's words, as the reasoning writes them (the reasoning's own memo).
        self.text: Callable[[Fact], str] = fact_text(rb)
        #: id(object) -> (object, its plan): kept alive while listed, so no id is reused meanwhile.
        self._plans: dict[int, tuple[Any, Any]] = {}
        # The rule graph's independent parts: two fact names are in one part when a rule tests or
        # derives both. No rule reaches across parts, so the engine's run on a profile is the union
        # of its runs on each part's facts (see split / assemble).
        parent: dict[str, str] = {}

        def find(name: str) -> str:
            parent.setdefault(name, name)
            while parent[name] != name:
                parent[name] = parent[parent[name]]
                name = parent[name]
            return name

        rule_names: dict[str, list[str]] = {}
        for rule in rb.rules:
            names = rule_names[rule.id] = [*(condition_fact(c) for c in rule.when),
                                           *(f for f, _ in derived_facts(rule))]
            for name in names:
                parent[find(name)] = find(names[0])
        roots = sorted({find(name) for name in parent})
        #: Fact name -> the number of its part.
        self.part: dict[str, int] = {name: roots.index(find(name)) for name in parent}
        self.rule_part: dict[str, int] = {rid: self.part[names[0]] for rid, names in rule_names.items()}

    def met(self, name: str, value: Scalar) -> int:
        """The conditions on ``name`` that ``value`` meets, as a bit set (memoised)."""
        key = (name, type(value), value)
        found = self._met.get(key)
        if found is None:
            found = 0
            for i, test in enumerate(self.tests.get(name, ())):
                if test(value):
                    found |= 1 << i
            if len(self._met) >= self.MAX_MEMO:
                self._met.clear()
            self._met[key] = found
        return found

    def of(self, facts: Iterable[Fact]) -> tuple[Key, tuple[Fact, ...]] | None:
        """The signature of the engine's input facts, and the facts it keeps, in the same order.

        None when a value cannot be compared with a condition on it (the
        engine has no defined answer there; the caller evaluates in full and
        reports what the engine says).
        """
        entries: list[tuple[tuple[str, str, str], Entry, Fact]] = []
        derivable = self.derivable
        for fact in set(facts):
            name, value = fact
            try:
                met = self.met(name, value)
            except ValueError:
                return None
            known = fact in derivable
            if not met and not known:
                continue
            exact = (type(value).__name__, repr(value)) if known or not _is_number(value) else None
            entries.append((_order(fact), (name, met, exact), fact))
        entries.sort(key=lambda e: e[0])
        return tuple(e[1] for e in entries), tuple(e[2] for e in entries)

    def variable(self, premise: Premise) -> bool:
        """Whether a premise may hold another value in a result instantiated from this one.

        Exactly the given facts that are keyed by the conditions they meet
        rather than by value (see :meth:`of`): numbers no rule can derive.
        """
        return premise.given and _is_number(premise.value) and (premise.fact, premise.value) not in self.derivable

    def plan(self, obj: Any) -> Any:
        """Where in ``obj`` the variable premises are: None for nowhere, else a tree of (class, parts).

        Results share their steps, so each object's plan is worked out once
        and remembered (bounded).
        """
        cls = type(obj)
        if cls in _LEAVES:
            return None
        if cls is Premise:
            return _PREMISE if self.variable(obj) else None
        found = self._plans.get(id(obj))
        if found is not None:
            return found[1]
        plan: Any = None
        if cls is tuple:
            items = tuple((i, p) for i, x in enumerate(obj) if (p := self.plan(x)) is not None)
            plan = (tuple, items) if items else None
        else:
            parts = tuple((alias, name, p) for alias, name in _premise_fields(cls)
                          if (p := self.plan(getattr(obj, name))) is not None)
            plan = (cls, parts) if parts else None
        if len(self._plans) >= self.MAX_MEMO:
            self._plans.clear()
        self._plans[id(obj)] = (obj, plan)
        return plan

    def parts(self, key: Key, slots: tuple[Fact, ...]) -> dict[Key, tuple[Fact, ...]]:
        """A signature cut along the rule graph's parts: each part's own signature, with its facts."""
        keys: dict[int, list[Entry]] = {}
        facts: dict[int, list[Fact]] = {}
        for entry, fact in zip(key, slots):
            part = self.part[entry[0]]
            keys.setdefault(part, []).append(entry)
            facts.setdefault(part, []).append(fact)
        return {tuple(keys[p]): tuple(facts[p]) for p in sorted(keys)}

    def split(self, trace: Trace, key: Key, slots: tuple[Fact, ...]) -> dict[Key, Part] | None:
        """What the engine did in each part, with the part's given facts as positions, to reuse for others.

        None if a premise is a given fact the signature does not keep (it
        cannot be: the fact met the condition it matched).
        """
        parts = self.parts(key, slots)
        where: dict[Fact, tuple[Key, int]] = {}
        for sub, facts in parts.items():
            for i, fact in enumerate(facts):
                where[fact] = (sub, i)
        given = set(trace.given)
        firings: dict[Key, list[tuple[str, tuple[Fact | int, ...]]]] = {sub: [] for sub in parts}
        derived: dict[Key, list[Fact]] = {sub: [] for sub in parts}
        subkey_of = {self.part[sub[0][0]]: sub for sub in parts}
        for firing in trace.firings:
            home = subkey_of.get(self.rule_part[firing.rule_id])
            if home is None:
                return None
            refs: list[Fact | int] = []
            for premise in firing.premises:
                found = where.get(premise)
                if found is None and premise in given:
                    return None
                refs.append(premise if found is None else found[1])
            firings[home].append((firing.rule_id, tuple(refs)))
        for fact in trace.derived:
            home = subkey_of.get(self.part[fact[0]])
            if home is None:
                return None
            derived[home].append(fact)
        return {sub: Part(tuple(firings[sub]), tuple(derived[sub])) for sub in parts}

    def assemble(self, found: list[tuple[Part, tuple[Fact, ...]]], facts: Iterable[Fact]) -> Trace:
        """The engine's trace on ``facts``, from each part's run on other facts with the same part signature."""
        firings: list[tuple[str, tuple[Fact, ...]]] = []
        derived: list[Fact] = []
        for part, slots in found:
            for rule_id, refs in part.firings:
                premises: list[Fact] = [slots[r] if isinstance(r, int) else r for r in refs]
                if len(premises) > 1:
                    premises.sort(key=_order)
                firings.append((rule_id, tuple(premises)))
            derived += part.derived
        return Trace(
            given=tuple(sorted(set(facts), key=_order)),
            firings=_sorted_firings(firings),
            derived=tuple(sorted(derived, key=_order)),
        )


@attrs.frozen
class Part:
    """What the engine did in one part of the rule graph: firings (premises as positions among the
    part's given facts, or as derived facts) and the facts derived."""

    firings: tuple[tuple[str, tuple[Fact | int, ...]], ...]
    derived: tuple[Fact, ...]


class Template:
    """A result built for one profile, ready to be instantiated for another with the same signature."""

    __slots__ = ("result", "slots", "numbers", "_plan")

    def __init__(self, result: Recommendation, key: Key, slots: tuple[Fact, ...]) -> None:
        self.result = result
        self.slots = slots
        #: Positions of the slots that may differ between profiles with this signature (numbers).
        self.numbers = tuple(i for i, entry in enumerate(key) if entry[2] is None)
        self._plan: Any = _UNPLANNED

    def instantiate(self, signatures: Signatures, profile: dict[str, Any], slots: tuple[Fact, ...],
                    recommender: Any) -> Recommendation:
        """The result a fresh evaluation of a profile with this signature and these facts would give.

        Only the objects on the way to a premise whose value changes are
        rebuilt; everything else (most steps, all techniques without such
        premises) is shared with the template, as results share their steps.
        """
        changes: dict[Fact, Fact] = {}
        for i in self.numbers:
            old, new = self.slots[i], slots[i]
            if type(old[1]) is not type(new[1]) or repr(old[1]) != repr(new[1]):
                changes[old] = new
        result = self.result
        if changes:
            if self._plan is _UNPLANNED:
                self._plan = signatures.plan(result)
            if self._plan is not None:

                def swap(p: Premise) -> Premise:
                    new = changes.get((p.fact, p.value))
                    return p if new is None else Premise(p.fact, new[1], signatures.text(new), True)

                result = _apply(result, self._plan, swap, {})
        instance: Recommendation = _replace(result, {"profile": FrozenMapping(profile), "_recommender": recommender})
        return instance


_UNPLANNED = object()
_PREMISE = "premise"


#: Values that hold no premise: the walks below never look inside them.
_LEAVES = frozenset({str, int, float, bool, type(None)})
#: Per attrs class, its fields as (init argument, attribute name); an empty tuple for any other class.
_FIELDS: dict[type, tuple[tuple[str, str], ...]] = {}
#: Per attrs class, its attributes __init__ does not set (caches such as a result's JSON text), with defaults.
_UNSET: dict[type, tuple[tuple[str, Any], ...]] = {}


def _fields(cls: type) -> tuple[tuple[str, str], ...]:
    found = _FIELDS.get(cls)
    if found is None:
        found = _FIELDS[cls] = tuple((a.alias, a.name) for a in attrs.fields(cls) if a.init) if attrs.has(cls) else ()
        _UNSET[cls] = tuple((a.name, a.default) for a in attrs.fields(cls) if not a.init) if attrs.has(cls) else ()
    return found


#: Per attrs class, the fields whose declared type can hold a Premise, as (init argument, attribute name).
_WITH_PREMISES: dict[type, tuple[tuple[str, str], ...]] = {}
_HOLDS: dict[Any, bool] = {}


def _premise_fields(cls: type) -> tuple[tuple[str, str], ...]:
    """The fields of ``cls`` a premise can be in, read from their type hints (all of them, if unreadable).

    A plan walks only these: a result's contributions, scores and texts are
    never looked into.
    """
    found = _WITH_PREMISES.get(cls)
    if found is None:
        try:
            hints = typing.get_type_hints(cls)
        except Exception:  # hints that do not resolve: assume anything
            hints = {}
        found = _WITH_PREMISES[cls] = tuple(
            (alias, name) for alias, name in _fields(cls) if name not in hints or _holds_premise(hints[name]))
    return found


def _holds_premise(tp: Any) -> bool:
    """Whether a value of type ``tp`` can be, or contain, a Premise."""
    found = _HOLDS.get(tp)
    if found is None:
        _HOLDS[tp] = True  # while this type is looked into (a type that refers back to itself): assume it can
        if tp is Premise or tp is Any or tp is object:
            found = True
        elif tp in _LEAVES:
            found = False
        elif isinstance(tp, type) and attrs.has(tp):
            found = bool(_premise_fields(tp))
        else:
            args = typing.get_args(tp)
            found = any(_holds_premise(a) for a in args if a is not Ellipsis) if args else True
        _HOLDS[tp] = found
    return found


def _apply(obj: Any, plan: Any, swap: Callable[[Premise], Premise], done: dict[int, Any]) -> Any:
    """``obj`` with each variable premise swapped; objects met twice (shared steps) are rebuilt once."""
    if plan is _PREMISE:
        return swap(obj)
    oid = id(obj)
    found = done.get(oid)
    if found is not None:
        return found
    kind, parts = plan
    if kind is tuple:
        items = list(obj)
        for i, p in parts:
            items[i] = _apply(items[i], p, swap, done)
        new: Any = tuple(items)
    else:
        new = _replace(obj, {name: _apply(getattr(obj, name), p, swap, done) for _, name, p in parts})
    done[oid] = new
    return new


def _replace(obj: Any, values: dict[str, Any]) -> Any:
    """A copy of a frozen attrs value with some attributes replaced, already in their converted form.

    ``attrs.evolve`` would run every converter and validator again on values
    that passed them when the template was built; copying the attributes is
    the same object at a fraction of the cost. Attributes ``__init__`` does
    not set are caches of the original (its JSON text): the copy starts
    without them, as ``evolve``'s would.
    """
    cls = type(obj)
    new = object.__new__(cls)
    for _, name in _fields(cls):
        object.__setattr__(new, name, values[name] if name in values else getattr(obj, name))
    for name, default in _UNSET[cls]:  # a copy starts without the original's caches
        object.__setattr__(new, name, default)
    return new


__all__ = ["Key", "Part", "Signatures", "Template"]
