"""A plain-Python reference evaluator of a loaded :class:`Rulebase`.

It reads the same rule objects the engine compiles (never a second copy of the
rules) and computes the same :class:`~backcare._engine.Trace`, so that
durable-rules can be checked against it on generated profiles and packs, and
so that the benchmark has a baseline. The recommendation is then built by the
shared :func:`backcare._reasoning.build`.

The semantics are the engine's, measured rather than assumed:

* forward chaining to a fixpoint; a rule fires once for each distinct
  combination of facts, one fact per condition, that satisfies its conditions;
* a condition holds for a fact of its name when every test does; ``in`` is
  any ``eq``; ``contains`` is ``eq`` on one item of a list field;
* values compare as durable-rules' C core compares them (``reduceProperties``
  in ``events.c``): booleans are the numbers 0 and 1 (so ``true == 1``),
  integers compare as 64-bit integers, any comparison involving a float is
  done in doubles, strings compare byte-wise, and a string compared with a
  boolean equals ``"true"``/``"false"`` (also with one trailing space);
* facts and derived facts are de-duplicated with Python equality, exactly as
  the engine's own bookkeeping does, so ``(f, 1)`` and ``(f, 1.0)`` are one
  fact.

A string compared with a number reads uninitialised memory in durable-rules;
the loader refuses such tests, and the oracle raises :class:`ValueError`
rather than guess.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from itertools import product
from typing import Any

from ._engine import Fact, Trace, _order, _sorted_firings, condition_fact, derived_facts
from ._model import Condition, Rulebase, Test
from ._profile import Scalar
from ._reasoning import build
from ._result import Provenance, Recommendation

_INT64 = (-(2**63), 2**63 - 1)


def _int64(value: int) -> int:
    """An integer as durable's ``atoll`` reads it: saturated to 64 bits."""
    return min(max(value, _INT64[0]), _INT64[1])


def _c_string(value: str) -> bytes:
    """A string as durable-rules holds it: the JSON text between the quotes."""
    return json.dumps(value, ensure_ascii=False)[1:-1].encode("utf-8")


def _strncmp(left: bytes, right: bytes) -> int:
    """``strncmp(left, right, max(len))`` on NUL-terminated strings."""
    a, b = left.split(b"\0", 1)[0], right.split(b"\0", 1)[0]
    return (a > b) - (a < b)


_BOOL_TEXT = {True: (b"true ", 4), False: (b"false ", 5)}


def _reduce_string(left: bytes, left_len: int, right: bytes, right_len: int) -> int:
    length = max(left_len, right_len)
    return _strncmp(left[:length], right[:length])


def compare(op: str, left: Scalar, right: Scalar) -> bool:
    """``left <op> right`` as durable-rules evaluates it (left is the fact's value)."""
    if isinstance(left, str) or isinstance(right, str):
        if isinstance(left, str) and isinstance(right, str):
            a, b = _c_string(left), _c_string(right)
            cmp = _reduce_string(a, len(a), b, len(b))
        elif isinstance(left, str) and isinstance(right, bool):
            text, n = _BOOL_TEXT[right]
            s = _c_string(left)
            cmp = _reduce_string(s, len(s), text, n)
        elif isinstance(right, str) and isinstance(left, bool):
            text, n = _BOOL_TEXT[left]
            s = _c_string(right)
            cmp = _reduce_string(text, n, s, len(s))
        else:
            raise ValueError(f"durable-rules has no defined comparison of {left!r} with {right!r}")
    elif isinstance(left, float) or isinstance(right, float):
        x, y = float(left), float(right)
        cmp = (x > y) - (x < y)
    else:
        i, j = _int64(int(left)), _int64(int(right))
        cmp = (i > j) - (i < j)
    if op in ("eq", "contains", "lacks", "given"):
        return cmp == 0
    if op == "ne":
        return cmp != 0
    if op == "gt":
        return cmp > 0
    if op == "ge":
        return cmp >= 0
    if op == "lt":
        return cmp < 0
    if op == "le":
        return cmp <= 0
    raise ValueError(f"unknown operator {op!r}")


def _test(test: Test) -> Callable[[Scalar], bool]:
    if test.op == "in":
        assert isinstance(test.value, tuple)
        values = test.value
        return lambda v: any(compare("eq", v, x) for x in values)
    op, value = test.op, test.value
    assert not isinstance(value, tuple)
    return lambda v: compare(op, v, value)


def _condition(cond: Condition) -> Callable[[Scalar], bool]:
    tests = [_test(t) for t in cond.tests]
    return lambda v: all(t(v) for t in tests)


class _Compiled:
    """Per-rulebase tables: which (rule, condition) each fact name feeds."""

    def __init__(self, rb: Rulebase) -> None:
        self.rules = rb.rules
        self.by_name: dict[str, list[tuple[int, int, Callable[[Scalar], bool]]]] = {}
        self.derives = [derived_facts(r) for r in rb.rules]
        for ri, rule in enumerate(rb.rules):
            for ci, cond in enumerate(rule.when):
                self.by_name.setdefault(condition_fact(cond), []).append((ri, ci, _condition(cond)))


def evaluate(rb: Rulebase, facts: Iterable[Fact]) -> Trace:
    """The trace the engine produces for ``facts``, computed in plain Python.

    Semi-naive forward chaining: each fact, given or derived, is matched once
    against every condition on its name, and a rule fires for each new
    combination that includes it, so every combination fires exactly once.
    """
    compiled = rb.memo("oracle", _Compiled)
    given = tuple(sorted(set(facts), key=_order))
    known: set[Fact] = set(given)
    derived: set[Fact] = set()
    firings: set[tuple[str, tuple[Fact, ...]]] = set()
    matched: list[list[list[Fact]]] = [[[] for _ in r.when] for r in compiled.rules]
    queue = list(given)
    while queue:
        fact = queue.pop(0)
        for ri, ci, holds in compiled.by_name.get(fact[0], ()):
            if not holds(fact[1]):
                continue
            slots = matched[ri]
            slots[ci].append(fact)
            choices = [s if j != ci else [fact] for j, s in enumerate(slots)]
            for combo in product(*choices):
                rule = compiled.rules[ri]
                firings.add((rule.id, tuple(sorted(set(combo), key=_order))))
                for new in compiled.derives[ri]:
                    if new not in known:
                        known.add(new)
                        derived.add(new)
                        queue.append(new)
    return Trace(
        given=given,
        firings=_sorted_firings(firings),
        derived=tuple(sorted(derived, key=_order)),
    )


def recommend(rb: Rulebase, profile: Mapping[str, Any], facts: Iterable[Fact], ranking: str = "seed") -> Recommendation:
    """The recommendation built from the oracle's trace, by the shared reasoning."""
    return build(rb, profile, evaluate(rb, facts), Provenance(rb.packs, ranking, rb.safety_overrides))
