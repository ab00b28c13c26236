"""durable-rules' limits, checked on the merged rulebase before the engine sees it."""

from __future__ import annotations

from typing import Any

from .._engine import pattern_key
from .._errors import Problem
from .._model import Condition, Origin, Rule, Rulebase

#: durable-rules limits, checked before the engine sees a pack: past them it
#: hangs, segfaults or answers with a bare error number. Each is set below a
#: limit measured on durable-rules 2.0.28 (with its C constant in brackets):
#: 4096 rules per ruleset (error 106); 256 rules ending on one identical
#: condition (BETA_LIST_LENGTH: error 108 or a read past the list); 16
#: conditions in one rule (MAX_MESSAGE_FRAMES: error 304 when they all hold);
#: 511 alpha nodes under one parent (NEXT_BUCKET_LENGTH: registering one more
#: never returns), which bounds the fact names tested, the engine's own
#: sentinel included, and the value tests on one fact; 64 value tests holding
#: for one fact at once (MAX_STACK_SIZE: error 303).
MAX_RULES = 4000
MAX_SHARED_PATTERN = 200
MAX_CONDITIONS_PER_RULE = 16
MAX_FACT_NAMES = 500
MAX_VALUE_TESTS_PER_FACT = 60
MAX_FIELDS = 200
#: Not an engine limit but a cost one: a rule fires once per combination of
#: matching facts, so conditions on facts derived with many values multiply.
MAX_COMBINATIONS_PER_RULE = 1024
#: Not an engine limit: the largest weight a rule may add, either way. With
#: at most MAX_RULES rules each firing at most MAX_COMBINATIONS_PER_RULE
#: times, every score stays a finite number (and strict JSON).
MAX_WEIGHT = 1000
#: How deep a rule file may nest tables, arrays and dotted keys, and how many
#: digits a number in it may have: past these the TOML parser itself takes
#: quadratic time and memory (a 40,000-part dotted key needs gigabytes) or
#: recurses until it fails.
MAX_NESTING = 32
MAX_NUMBER_DIGITS = 100


def _value_type(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return "string"



def _check_engine_limits(rb: Rulebase) -> list[Problem]:
    """durable-rules hangs, crashes or answers with error numbers past these; refuse first."""
    out: list[Problem] = []
    if len(rb.rules) > MAX_RULES:
        out.append(Problem(f"{len(rb.rules)} rules: the engine takes at most {MAX_RULES} in one rulebase"))
    if len(rb.fields) > MAX_FIELDS:
        out.append(Problem(f"{len(rb.fields)} profile fields: at most {MAX_FIELDS} are supported"))
    values = _value_counts(rb)
    shared: dict[str, list[str]] = {}
    per_fact: dict[str, dict[str, int]] = {}
    first_test: dict[str, Rule] = {}
    for rule in rb.rules:
        o = rule.origin or Origin("<rules>")
        if len(rule.when) > MAX_CONDITIONS_PER_RULE:
            out.append(Problem(f"{len(rule.when)} conditions: a rule may have at most {MAX_CONDITIONS_PER_RULE}",
                               o.file, o.line, rule.id, "when"))
        combinations = 1
        for cond in rule.when:
            key = pattern_key(cond)
            shared.setdefault(key, []).append(rule.id)
            per_fact.setdefault(cond.fact, {})[key] = _alpha_nodes(cond)
            first_test.setdefault(cond.fact, rule)
            combinations *= values.get(cond.fact, 1)
        if combinations > MAX_COMBINATIONS_PER_RULE:
            out.append(Problem(
                f"its conditions can match up to {combinations} combinations of facts, so it could fire that "
                f"often for one profile (at most {MAX_COMBINATIONS_PER_RULE}); facts derived with many values "
                "multiply: test fewer of them in one rule", o.file, o.line, rule.id, "when"))
    for key, ids in sorted(shared.items()):
        if len(ids) > MAX_SHARED_PATTERN:
            first = rb.by_id[ids[0]]
            o = first.origin or Origin("<rules>")
            out.append(
                Problem(
                    f"{len(ids)} rules share the identical condition {key}: the engine takes at most "
                    f"{MAX_SHARED_PATTERN}; combine them into fewer rules",
                    o.file, o.line, ids[0], "when",
                )
            )
    if len(per_fact) > MAX_FACT_NAMES:
        out.append(Problem(f"conditions test {len(per_fact)} different facts: the engine takes at most "
                           f"{MAX_FACT_NAMES}"))
    for fact, nodes in sorted(per_fact.items()):
        tests = sum(nodes.values())
        if tests > MAX_VALUE_TESTS_PER_FACT:
            rule = first_test[fact]
            o = rule.origin or Origin("<rules>")
            out.append(
                Problem(
                    f"fact {fact!r} is tested {tests} different ways across the rules ({len(nodes)} distinct "
                    f"condition(s); each value of an 'in' counts once): the engine takes at most "
                    f"{MAX_VALUE_TESTS_PER_FACT}", o.file, o.line_of(f"when.{fact}"), rule.id, f"when.{fact}"
                )
            )
    return out


def _alpha_nodes(cond: Condition) -> int:
    """An upper bound on the engine's value-test nodes for one condition ('in' is one per value)."""
    return sum(len(t.value) if isinstance(t.value, tuple) else 1 for t in cond.tests)


def _value_counts(rb: Rulebase) -> dict[str, int]:
    """How many values a fact can hold at once: one if given, plus each value rules derive for it.

    A list field's items are distinct and tested with ``contains`` (equality),
    so a condition on one matches at most one item.
    """
    derived: dict[str, set[tuple[str, Any]]] = {}
    for rule in rb.rules:
        for fact, value in rule.then.derive:
            derived.setdefault(fact, set()).add((_value_type(value), value))
    return {fact: len(vals) + (fact in rb.fields) for fact, vals in derived.items()}

