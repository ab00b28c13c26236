"""Cross-reference checks on a merged rulebase: every name resolves, types agree, no cycles."""

from __future__ import annotations

import attrs

from .._errors import Problem, did_you_mean
from .._model import Condition, Origin, Rule, Rulebase
from .._profile import COMPUTED_FACTS
from .limits import _check_engine_limits, _value_type


def catalogue_ids(rb: Rulebase) -> dict[str, tuple[str, ...]]:
    """The ids each catalogue a list field may draw from holds (see ``FieldSpec.choices_from``)."""
    return {
        "red_flags": tuple(rb.red_flags),
        "conditions": tuple(rb.contraindications),
        "local_conditions": tuple(c.id for c in rb.contraindications.values() if c.effect == "avoid_area"),
    }


def _fact_types(rb: Rulebase) -> dict[str, set[str]]:
    """The value types each fact can have: declared for fields, seen for derived facts."""
    types: dict[str, set[str]] = {}
    for name, spec in (*rb.fields.items(), *COMPUTED_FACTS.items()):
        types[name] = {"number" if spec.type in ("int", "number") else spec.type}
    for rule in rb.rules:
        for fact, value in rule.then.derive:
            types.setdefault(fact, set()).add(_value_type(value))
    return types



def validate(rb: Rulebase) -> list[Problem]:
    """Cross-reference checks on a merged rulebase; returns the problems found."""
    problems: list[Problem] = []
    types = _fact_types(rb)
    known_facts = set(types)

    def problem(rule: Rule, message: str, key: str) -> None:
        o = rule.origin or Origin("<rules>")
        problems.append(Problem(message, o.file, o.line_of(key), rule.id, key))

    for rule in rb.rules:
        if rule.source and rule.source not in rb.sources:
            problem(rule, f"unknown source {rule.source!r}{did_you_mean(rule.source, rb.sources)}", "source")
        if rule.caveat_source and rule.caveat_source not in rb.sources:
            problem(
                rule,
                f"unknown caveat_source {rule.caveat_source!r}{did_you_mean(rule.caveat_source, rb.sources)}",
                "caveat_source",
            )
        for cond in rule.when:
            if cond.fact not in known_facts:
                problem(
                    rule,
                    f"condition on {cond.fact!r}, which is neither a profile field nor derived by any rule"
                    f"{did_you_mean(cond.fact, known_facts)}",
                    f"when.{cond.fact}",
                )
                continue
            problems += _check_tests(rule, cond, types[cond.fact], rb)
        for tech, _ in rule.then.score:
            if tech not in rb.techniques:
                problem(rule, f"unknown technique {tech!r}{did_you_mean(tech, rb.techniques)}", "then.score")
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
                problem(rule, f"unknown red flag {flag!r}{did_you_mean(flag, rb.red_flags)}", "then.flag")
        for implied in rule.then.condition:
            if implied not in rb.contraindications:
                problem(rule, f"unknown contraindication {implied!r}{did_you_mean(implied, rb.contraindications)}",
                        "then.condition")
        ex = rule.then.exclude
        if ex:
            for tech in (*ex.techniques, *(ex.only or ())):
                if tech not in rb.techniques:
                    problem(rule, f"unknown technique {tech!r}{did_you_mean(tech, rb.techniques)}", "then.exclude")
    for red_flag in rb.red_flags.values():
        if red_flag.source not in rb.sources:
            o = red_flag.origin or Origin("<rules>")
            problems.append(Problem(f"unknown source {red_flag.source!r}{did_you_mean(red_flag.source, rb.sources)}",
                                    o.file, o.line, red_flag.id, "source"))
    for level in ("emergency", "urgent", "routine"):
        if rb.red_flags and level not in rb.urgency_actions:
            problems.append(Problem(f"no [urgency.{level}] action text is defined", "<rules>", key="urgency"))
    problems += _check_cycles(rb)
    problems += _check_engine_limits(rb)
    problems += _check_examples(rb)
    return problems


def _check_tests(rule: Rule, cond: Condition, types: set[str], rb: Rulebase) -> list[Problem]:
    out: list[Problem] = []
    key = f"when.{cond.fact}"
    o = attrs.evolve(rule.origin or Origin("<rules>"), line=(rule.origin or Origin("<rules>")).line_of(key))
    spec = rb.fields.get(cond.fact) or COMPUTED_FACTS.get(cond.fact)
    for test in cond.tests:
        if test.op == "given":
            if spec is None:
                out.append(Problem(f"'given' tests a profile field; {cond.fact!r} is only derived by rules",
                                   o.file, o.line, rule.id, key))
            continue
        if "list" in types:
            if test.op not in ("contains", "lacks"):
                out.append(Problem(f"{cond.fact!r} is a list: test it with contains = \"id\" or lacks = \"id\"",
                                   o.file, o.line, rule.id, key))
                continue
            if not isinstance(test.value, str):
                # durable-rules compares a string with a number through uninitialised memory.
                out.append(Problem(f"{cond.fact!r} holds strings: {test.op} needs a string id, got {test.value!r}",
                                   o.file, o.line, rule.id, key))
                continue
            allowed = catalogue_ids(rb).get(spec.choices_from or "") if spec else None
            if allowed is None and spec is not None and spec.choices:
                allowed = spec.choices
            if allowed is not None and test.value not in allowed:
                out.append(Problem(f"{cond.fact!r} has no id {test.value!r}{did_you_mean(str(test.value), allowed)}",
                                   o.file, o.line, rule.id, key))
            continue
        if test.op in ("contains", "lacks"):
            out.append(Problem(f"{test.op} applies only to list fields; {cond.fact!r} is not one", o.file, o.line,
                               rule.id, key))
            continue
        values = test.value if isinstance(test.value, tuple) else (test.value,)
        for value in values:
            if _value_type(value) not in types:
                out.append(
                    Problem(f"{cond.fact!r} holds {'/'.join(sorted(types))} values; {value!r} can never match",
                            o.file, o.line, rule.id, key)
                )
            elif spec is not None and spec.choices and value not in spec.choices:
                out.append(
                    Problem(f"{cond.fact!r} has no value {value!r}{did_you_mean(str(value), spec.choices)}",
                            o.file, o.line, rule.id, key)
                )
    return out


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



def _check_examples(rb: Rulebase) -> list[Problem]:
    """Examples must name things that exist, so a typo fails on load, not silently."""
    out: list[Problem] = []
    for ex in rb.examples:
        o = ex.origin or Origin("<rules>")
        e = ex.expect
        for tech in (*((e.first,) if e.first else ()), *e.order, *e.in_top, *e.absent, *e.excluded,
                     *e.not_recommended):
            if tech not in rb.techniques:
                out.append(Problem(f"example {ex.name!r}: unknown technique {tech!r}"
                                   f"{did_you_mean(tech, rb.techniques)}", o.file, o.line, key="expect"))
        for rid in (*e.fired, *e.not_fired):
            if rid not in rb.by_id and rid not in rb.disabled:
                out.append(Problem(f"example {ex.name!r}: unknown rule {rid!r}{did_you_mean(rid, rb.by_id)}",
                                   o.file, o.line, key="expect"))
    return out
