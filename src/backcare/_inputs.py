"""What the engine starts from: the profile's facts, computed facts, and the facts input tests need.

``lacks`` and ``given`` test the profile as given; the engine only sees
facts that exist, so each such test matches a fact computed here before it
runs (see :func:`backcare._engine.condition_fact`). Such a fact is asserted
only where it can matter: when every other condition of a rule using it that
no rule can make true is already true of the given facts. Each engine call
costs tens of microseconds, and without this a profile would carry a fact for
every local condition it does not list.
"""

from __future__ import annotations

from collections.abc import Callable

from ._engine import Fact, condition_fact
from ._loader.safety import derived_by, may_hold
from ._model import INPUT_OPERATORS, Condition, Rulebase, Test
from ._oracle import _condition
from ._profile import Profile, Scalar

Guard = tuple[str, Callable[[Scalar], bool]]


class _InputTests:
    """Per rulebase: each input fact the rules test, and the conditions that decide whether it can matter."""

    def __init__(self, rb: Rulebase) -> None:
        derivable: dict[str, list[object]] = {}
        for rule in rb.rules:
            for fact, value in derived_by(rule):
                derivable.setdefault(fact, []).append(value)

        def only_given(cond: Condition) -> bool:
            return not any(may_hold(cond, v) for v in derivable.get(cond.fact, ()))

        #: (field, op, value) -> the guards of each rule using it (all must hold for that rule).
        self.tests: dict[tuple[str, str, Scalar], list[list[Guard]]] = {}
        for rule in rb.rules:
            guards = [(c.fact, _condition(c)) for c in rule.when
                      if not any(t.op in INPUT_OPERATORS for t in c.tests) and only_given(c)]
            for cond in rule.when:
                for test in cond.tests:
                    if test.op in INPUT_OPERATORS:
                        assert not isinstance(test.value, tuple)
                        self.tests.setdefault((cond.fact, test.op, test.value), []).append(guards)
        #: The same, in a fixed order, each with the name of the fact it asserts.
        self.ordered: list[tuple[str, str, Scalar, str, list[list[Guard]]]] = [
            (field, op, value, condition_fact(Condition(field, (Test(op, value),))), uses)
            for (field, op, value), uses in sorted(self.tests.items(),
                                                   key=lambda kv: (kv[0][0], kv[0][1], repr(kv[0][2])))
        ]


def input_facts(rb: Rulebase, profile: Profile) -> list[Fact]:
    """The profile's facts (computed ones included) and the input tests' facts that can matter."""
    facts = profile.facts()
    ordered = rb.memo("input-tests", _InputTests).ordered
    if not ordered:
        return facts
    by_name: dict[str, list[Scalar]] = {}
    for name, value in facts:
        by_name.setdefault(name, []).append(value)
    extra: list[Fact] = []
    for field, op, value, fact_name, uses in ordered:
        present = by_name.get(field)
        if op == "lacks" and present and value in present:
            continue
        if op == "given" and bool(present) != value:
            continue
        for guards in uses:  # asserted if, for some rule using it, every guard holds for a given fact
            for name, test in guards:
                values = by_name.get(name)
                if not values or not any(test(v) for v in values):
                    break
            else:
                extra.append((fact_name, value))
                break
    return facts + extra
