"""Checks on a merged rulebase: names resolve, types agree, conditions can hold, no cycles, valid examples."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import attrs

from .._errors import Problem, ProfileError, did_you_mean
from .._model import INPUT_OPERATORS, Condition, Origin, Rule, Rulebase, Test
from .._profile import COMPUTED_FACTS, FieldSpec, Profile
from .._text import quote
from .limits import _check_engine_limits, _value_type

#: What a problem is a knock-on of: the (kind, id) of an entry that had a problem of its own.
Cause = tuple[str, str]


def catalogue_ids(rb: Rulebase) -> dict[str, tuple[str, ...]]:
    """The ids each catalogue a list field may draw from holds (see ``FieldSpec.choices_from``)."""
    return {
        "red_flags": tuple(rb.red_flags),
        "conditions": tuple(rb.contraindications),
        "local_conditions": tuple(c.id for c in rb.contraindications.values() if c.effect == "avoid_area"),
    }


def _fact_types(rb: Rulebase) -> dict[str, set[str]]:
    """The value types each fact can have: declared for fields and computed facts, seen for derived facts."""
    types: dict[str, set[str]] = {}
    for name, spec in (*rb.fields.items(), *COMPUTED_FACTS.items()):
        types[name] = {"number" if spec.type in ("int", "number") else spec.type}
    for rule in rb.rules:
        for fact, value in rule.then.derive:
            types.setdefault(fact, set()).add(_value_type(value))
    return types



def effective_fields(rb: Rulebase) -> dict[str, FieldSpec]:
    """Field specs with catalogue-backed choices filled in from the rulebase."""
    catalogues = catalogue_ids(rb)
    out = {}
    for name, spec in rb.fields.items():
        if spec.choices_from in catalogues:
            spec = attrs.evolve(spec, choices=catalogues[spec.choices_from])
        out[name] = spec
    return out


def _entry(rule: Rule, rb: Rulebase) -> tuple[str, str]:
    """The kind and id problems about ``rule`` name: a red flag or contraindication for their rules."""
    for prefix, kind, catalogue in (("red-flag.", "red_flag", rb.red_flags),
                                    ("contraindication.", "contraindication", rb.contraindications)):
        if rule.id.startswith(prefix) and rule.id[len(prefix):] in catalogue:
            return kind, rule.id[len(prefix):]
    return "rule", rule.id


def validate(rb: Rulebase) -> list[Problem]:
    """Cross-reference checks on a merged rulebase; returns the problems found."""
    return [p for p, _ in check_rulebase(rb)]


def check_rulebase(
    rb: Rulebase, broken: Mapping[Cause, None] | None = None, broken_facts: Mapping[str, Cause] | None = None
) -> list[tuple[Problem, Cause | None]]:
    """:func:`validate`, each problem with the entry it is a knock-on of, if any.

    ``broken`` lists the entries that had problems while being parsed and
    ``broken_facts`` the facts they would have given: a reference to one of
    them fails only because of that first problem.
    """
    broken = broken or {}
    broken_facts = broken_facts or {}
    problems: list[tuple[Problem, Cause | None]] = []
    types = _fact_types(rb)
    known_facts = set(types)
    derived: dict[str, set[object]] = {}
    for r in rb.rules:
        for f, v in r.then.derive:
            derived.setdefault(f, set()).add(v)

    def problem(rule: Rule, message: str, key: str, cause: Cause | None = None) -> None:
        o = rule.origin or Origin("<rules>")
        kind, ident = _entry(rule, rb)
        problems.append((Problem(message, o.file, o.line_of(key), ident, key, kind=kind),
                         cause if cause in broken else None))

    def unknown(rule: Rule, what: str, name: str, known: Iterable[str], key: str, kind: str) -> None:
        problem(rule, f"unknown {what} {quote(name)}{did_you_mean(name, known)}", key, (kind, name))

    for rule in rb.rules:
        if rule.source and rule.source not in rb.sources:
            unknown(rule, "source", rule.source, rb.sources, "source", "source")
        if rule.caveat_source and rule.caveat_source not in rb.sources:
            unknown(rule, "caveat_source", rule.caveat_source, rb.sources, "caveat_source", "source")
        for cond in rule.when:
            if cond.fact not in known_facts:
                problem(
                    rule,
                    f"condition on {quote(cond.fact)}, which is neither a profile field nor derived by any rule"
                    f"{did_you_mean(cond.fact, known_facts)}",
                    f"when.{cond.fact}",
                    broken_facts.get(cond.fact),
                )
                continue
            found = _check_tests(cond, types[cond.fact], rb)
            if not found and "list" not in types[cond.fact] and not _input_test(cond):
                spec = rb.fields.get(cond.fact) or COMPUTED_FACTS.get(cond.fact)
                found = _never_holds(cond, spec, derived.get(cond.fact, set()))
            for message, cause in found:
                problem(rule, message, f"when.{cond.fact}", cause)
        for tech, _ in rule.then.score:
            if tech not in rb.techniques:
                unknown(rule, "technique", tech, rb.techniques, "then.score", "technique")
        for fact, value in rule.then.derive:
            if fact in rb.fields and rb.fields[fact].type == "list":
                problem(rule, f"cannot derive {fact!r}: it is a list field", "then.derive")
            elif fact in COMPUTED_FACTS:
                problem(rule, f"cannot derive {fact!r}: backcare computes it from the profile", "then.derive")
            elif len(types[fact]) > 1:
                # True == 1 in both Python and the engine: one type per fact keeps matches exact.
                problem(rule, f"fact {fact!r} is given or derived as {' and '.join(sorted(types[fact]))} "
                        f"values; derive it as {_value_type(value)} everywhere", "then.derive")
        for flag in rule.then.flag:
            if flag not in rb.red_flags:
                unknown(rule, "red flag", flag, rb.red_flags, "then.flag", "red_flag")
        for implied in rule.then.condition:
            if implied not in rb.contraindications:
                unknown(rule, "contraindication", implied, rb.contraindications, "then.condition", "contraindication")
        ex = rule.then.exclude
        if ex:
            for tech in (*ex.techniques, *(ex.only or ())):
                if tech not in rb.techniques:
                    unknown(rule, "technique", tech, rb.techniques, "then.exclude", "technique")
    derivable = {f for r in rb.rules for f, _ in r.then.derive}
    for info in rb.facts.values():
        o = info.origin or Origin("<rules>")
        if info.name in rb.fields or info.name in COMPUTED_FACTS:
            problems.append((Problem(f"{quote(info.name)} is a profile field or a computed fact, not a derived "
                                     "fact: its words come from its field", o.file, o.line_of("name"), info.name,
                                     "name", kind="fact"), None))
        elif info.name not in derivable:
            problems.append((Problem(f"no rule derives the fact {quote(info.name)}"
                                     f"{did_you_mean(info.name, derivable)}", o.file, o.line_of("name"),
                                     info.name, "name", kind="fact"), None))
    for red_flag in rb.red_flags.values():
        if red_flag.source not in rb.sources:
            o = red_flag.origin or Origin("<rules>")
            cause = ("source", red_flag.source)
            problems.append((Problem(f"unknown source {quote(red_flag.source)}"
                                     f"{did_you_mean(red_flag.source, rb.sources)}",
                                     o.file, o.line, red_flag.id, "source", kind="red_flag"),
                             cause if cause in broken else None))
    for level in ("emergency", "urgent", "routine"):
        if rb.red_flags and level not in rb.urgency_actions:
            problems.append((Problem(f"no [urgency.{level}] action text is defined", "<rules>", key="urgency"),
                             None))
    problems += [(p, None) for p in _check_cycles(rb)]
    problems += [(p, None) for p in _check_engine_limits(rb)]
    problems += [(p, c if c in broken else None) for p, c in _check_examples(rb, broken_facts)]
    return problems


def _check_tests(cond: Condition, types: set[str], rb: Rulebase) -> list[tuple[str, Cause | None]]:
    """Tests that can never match for their type or choices: (message, knock-on cause)."""
    out: list[tuple[str, Cause | None]] = []
    spec = rb.fields.get(cond.fact) or COMPUTED_FACTS.get(cond.fact)
    fact = quote(cond.fact)
    for test in cond.tests:
        if test.op == "given":
            if spec is None:
                out.append((f"'given' tests a profile field; {fact} is only derived by rules", None))
            continue
        if "list" in types:
            if test.op not in ("contains", "lacks"):
                out.append((f"{fact} is a list: test it with contains = \"id\" or lacks = \"id\"", None))
                continue
            if not isinstance(test.value, str):
                # durable-rules compares a string with a number through uninitialised memory.
                out.append((f"{fact} holds strings: {test.op} needs a string id, got {quote(test.value)}", None))
                continue
            source = spec.choices_from if spec is not None else None
            kind = {"red_flags": "red_flag", "conditions": "contraindication",
                    "local_conditions": "contraindication"}.get(source or "", "")
            allowed: Iterable[str] | None = catalogue_ids(rb)[source] if kind and source else (
                spec.choices if spec and spec.choices else None)
            if allowed is not None and test.value not in allowed:
                out.append((f"{fact} has no id {quote(test.value)}{did_you_mean(str(test.value), allowed)}",
                            (kind, test.value) if kind else None))
            continue
        if test.op in ("contains", "lacks"):
            out.append((f"{test.op} applies only to list fields; {fact} is not one", None))
            continue
        values = test.value if isinstance(test.value, tuple) else (test.value,)
        for value in values:
            if _value_type(value) not in types:
                out.append((f"{fact} holds {'/'.join(sorted(types))} values; {quote(value)} can never match", None))
            elif spec is not None and spec.choices and value not in spec.choices:
                out.append((f"{fact} has no value {quote(value)}{did_you_mean(str(value), spec.choices)}", None))
    return out


def _input_test(cond: Condition) -> bool:
    return any(t.op in INPUT_OPERATORS for t in cond.tests)


def _never_holds(cond: Condition, spec: FieldSpec | None, values: set[object]) -> list[tuple[str, Cause | None]]:
    """A condition no value of its fact can meet: outside a field's range, or no derived value passes.

    The values a fact can take are its field's (``spec``: a number range,
    true and false, or any text) together with the ``values`` rules derive.
    """
    derived = sorted(values, key=repr)
    if any(all(_holds(t, v) for t in cond.tests) for v in derived):
        return []
    tests = " and ".join(t.describe() for t in cond.tests)
    what = f"condition {cond.fact} {tests} can never hold"
    if spec is None:
        shown = ", ".join(quote(v) for v in derived[:8]) + (", ..." if len(derived) > 8 else "")
        hint = ""
        strings = [v for v in derived if isinstance(v, str)]
        for t in cond.tests:
            if t.op == "eq" and isinstance(t.value, str) and strings:
                hint = did_you_mean(t.value, strings)
        return [(f"{what}: rules derive {quote(cond.fact)} only as {shown}{hint}", None)]
    if spec.type == "bool":
        if any(all(_holds(t, v) for t in cond.tests) for v in (True, False)):
            return []
        return [(f"{what}: the field is true or false", None)]
    if spec.type in ("int", "number"):
        if _number_range_holds(cond.tests, spec):
            return []
        return [(f"{what}: the field takes {spec.expected()}", None)]
    return []  # any text: every equality can hold


def _holds(test: Test, value: object) -> bool:
    """Whether ``value`` passes ``test``, comparing as the engine does (numbers with numbers)."""
    def same(a: object, b: object) -> bool:
        return _value_type(a) == _value_type(b) and a == b

    if test.op == "eq":
        return same(value, test.value)
    if test.op == "ne":
        return not same(value, test.value)
    if test.op == "in":
        assert isinstance(test.value, tuple)
        return any(same(value, v) for v in test.value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    bound = test.value
    assert isinstance(bound, (int, float))
    return {"gt": value > bound, "ge": value >= bound, "lt": value < bound, "le": value <= bound}.get(test.op, False)


def _number_range_holds(tests: tuple[Test, ...], spec: FieldSpec) -> bool:
    """Whether some value a number field accepts passes every test."""
    lo, lo_open = (spec.minimum if spec.minimum is not None else -math.inf), False
    hi, hi_open = (spec.maximum if spec.maximum is not None else math.inf), False
    points: list[float] | None = None
    excluded: set[float] = set()
    for t in tests:
        values = t.value if isinstance(t.value, tuple) else (t.value,)
        numbers = [v for v in values if not isinstance(v, bool) and isinstance(v, (int, float))]
        if t.op in ("eq", "in"):
            kept = set(numbers) if points is None else set(points) & set(numbers)
            points = sorted(kept)
        elif t.op == "ne":
            excluded.update(numbers)
        elif numbers:
            b = numbers[0]
            if t.op in ("gt", "ge") and (b > lo or (b == lo and t.op == "gt")):
                lo, lo_open = b, t.op == "gt"
            elif t.op in ("lt", "le") and (b < hi or (b == hi and t.op == "lt")):
                hi, hi_open = b, t.op == "lt"

    def inside(v: float) -> bool:
        return ((v > lo) if lo_open else (v >= lo)) and ((v < hi) if hi_open else (v <= hi)) and v not in excluded \
            and (spec.type != "int" or float(v).is_integer())

    if points is not None:
        return any(inside(v) for v in points)
    if spec.type == "int":
        first = lo if math.isinf(lo) else math.floor(lo) + 1 if lo_open or not float(lo).is_integer() else lo
        last = hi if math.isinf(hi) else math.ceil(hi) - 1 if hi_open or not float(hi).is_integer() else hi
        if first > last:
            return False
        # A range holds as long as the tests exclude fewer of its integers than it has.
        gaps = {v for v in excluded if first <= v <= last and float(v).is_integer()}
        return not math.isfinite(last - first) or last - first + 1 > len(gaps)
    if lo > hi or (lo == hi and (lo_open or hi_open)):
        return False
    return lo != hi or lo not in excluded


def _check_cycles(rb: Rulebase) -> list[Problem]:
    """Report derivation cycles: a fact that, through rules, is needed to derive itself."""
    graph: dict[str, set[str]] = {}
    by_edge: dict[tuple[str, str], str] = {}
    for rule in rb.rules:
        outs = [f for f, _ in rule.then.derive] + (["red_flags"] if rule.then.flag else []) \
            + (["conditions"] if rule.then.condition else [])
        for cond in rule.when:
            for out in outs:
                graph.setdefault(cond.fact, set()).add(out)
                by_edge.setdefault((cond.fact, out), rule.id)
    problems: list[Problem] = []
    state: dict[str, int] = {}
    reported: set[frozenset[str]] = set()

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    rule_ids = [by_edge[(a, b)] for a, b in zip(cycle, cycle[1:])]
                    first = rb.by_id[rule_ids[0]]
                    o = first.origin or Origin("<rules>")
                    problems.append(
                        Problem(
                            "derivation cycle: " + " -> ".join(cycle) + f" (rules {', '.join(rule_ids)})",
                            o.file, o.line, first.id, "then.derive",
                        )
                    )
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return problems



def _check_examples(rb: Rulebase, broken_facts: Mapping[str, Cause]) -> list[tuple[Problem, Cause | None]]:
    """Examples must name things that exist and give valid profiles, so a typo fails on load, not in a test."""
    out: list[tuple[Problem, Cause | None]] = []
    fields = effective_fields(rb)
    for ex in rb.examples:
        o = ex.origin or Origin("<rules>")

        def problem(message: str, key: str, cause: Cause | None = None) -> None:
            out.append((Problem(message, o.file, o.line_of(key), ex.name, key, kind="example"), cause))

        try:
            Profile.from_dict(dict(ex.profile), fields)
        except ProfileError as exc:
            field = (exc.field or "").split("[")[0]
            problem(f"the profile is not valid: {exc}", "profile", broken_facts.get(field))
        e = ex.expect
        for tech in (*((e.first,) if e.first else ()), *e.order, *e.in_top, *e.absent, *e.excluded,
                     *e.not_recommended):
            if tech not in rb.techniques:
                problem(f"unknown technique {quote(tech)}{did_you_mean(tech, rb.techniques)}", "expect",
                        ("technique", tech))
        for rid in (*e.fired, *e.not_fired):
            if rid not in rb.by_id and rid not in rb.disabled:
                problem(f"unknown rule {quote(rid)}{did_you_mean(rid, rb.by_id)}", "expect", ("rule", rid))
    return out
