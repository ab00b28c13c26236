"""Hypothesis strategies that write whole rule packs, valid or broken, as TOML text.

The differential tests load valid packs and compare durable-rules with the
reference evaluator on them; the fuzz tests also feed broken and oversized
packs to a worker process. A pack is built as plain data first (so profiles
for it can be generated from the same description) and then written out.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Sequence
from typing import Any

import attrs
from hypothesis import strategies as st

from backcare._engine import representable

PRESSURES = ["light", "moderate", "firm", "deep"]
STRING_CHOICES = ["a", "b", "c"]
LIST_CHOICES = ["x", "y", "z"]


# ---------------------------------------------------------------------------
# Writing TOML: the subset rule files use (strings, numbers, booleans, lists,
# inline tables). JSON string escapes are valid TOML basic-string escapes.


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def toml_key(key: str) -> str:
    return key if key and all(c.isalnum() or c in "_-" for c in key) else json.dumps(key)


def to_toml(tables: dict[str, list[dict[str, Any]]], top: dict[str, Any] | None = None) -> str:
    lines: list[str] = []
    for key, value in (top or {}).items():
        if isinstance(value, dict):
            for sub, entry in value.items():
                lines.append(f"[{key}.{sub}]")
                lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in entry.items()]
        else:
            lines.append(f"{toml_key(key)} = {toml_value(value)}")
    for table, entries in tables.items():
        for entry in entries:
            lines.append(f"\n[[{table}]]")
            lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in entry.items()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# Valid packs.


@attrs.frozen
class Fact:
    name: str
    type: str  # bool, int, number, string, list
    field: bool  # a profile field (else derived)


@attrs.frozen
class Pack:
    """A generated pack: its TOML text and what profiles for it may contain."""

    text: str
    fields: tuple[Fact, ...]
    rule_ids: tuple[str, ...]
    #: Per field, the values its conditions name (equalities, ``in`` lists, thresholds), so that
    #: profiles can sit exactly on, and just either side of, every boundary the rules draw.
    constants: tuple[tuple[str, tuple[Any, ...]], ...] = ()


def _value(fact_type: str) -> st.SearchStrategy[Any]:
    return {
        "bool": st.booleans(),
        "int": st.integers(-3, 12),
        "number": st.one_of(st.integers(-3, 12), st.sampled_from([-1.5, 0.5, 2.25, 7.0, 11.75])),
        "string": st.sampled_from(STRING_CHOICES),
        "list": st.sampled_from(LIST_CHOICES),
    }[fact_type]


@st.composite
def _condition(draw: st.DrawFn, fact: Fact, witness: Any) -> Any:
    """A condition on ``fact`` that ``witness`` meets, so it can hold (the loader refuses one that cannot).

    A profile field is sometimes tested as given: ``given`` (any type) or ``lacks`` (a list).
    """
    if fact.field and draw(st.integers(0, 7)) == 0:
        if fact.type == "list" and draw(st.booleans()):
            return {"lacks": witness}
        return {"given": draw(st.booleans())}
    if fact.type == "list":
        return {"contains": witness}
    if fact.type == "bool":
        return witness if draw(st.booleans()) else {"ne": not witness}
    value = _value(fact.type)
    others = value.filter(lambda v: v != witness)
    ops = ["eq", "ne", "in"] + (["gt", "ge", "lt", "le"] if fact.type in ("int", "number") else [])
    tests: dict[str, Any] = {}
    for op in draw(st.lists(st.sampled_from(ops), min_size=1, max_size=2, unique=True)):
        if op == "eq":
            tests[op] = witness
        elif op == "ne":
            tests[op] = draw(others)
        elif op == "in":
            tests[op] = draw(st.permutations([witness, *draw(st.lists(value, max_size=3))]))
        else:  # a bound the witness is inside
            below, above = witness - draw(st.sampled_from([1, 2, 0.5])), witness + draw(st.sampled_from([1, 2, 0.5]))
            tests[op] = {"gt": below, "ge": draw(st.sampled_from([below, witness])),
                         "lt": above, "le": draw(st.sampled_from([above, witness]))}[op]
    if list(tests) == ["eq"] and draw(st.booleans()):
        return tests["eq"]  # the short form: fact = value
    return tests


@st.composite
def packs(draw: st.DrawFn, max_rules: int = 14) -> Pack:
    """A valid pack of fields, techniques, layered derived facts and rules.

    Derived facts are layered (a rule deriving layer k tests only layers below
    it), so there are no cycles, and chains go several steps deep.
    """
    n_tech = draw(st.integers(1, 4))
    techniques = [{"id": f"t{i}", "name": f"Technique {i}", "description": "generated",
                   "pressure": draw(st.sampled_from(PRESSURES))} for i in range(n_tech)]
    types = ["bool", "int", "number", "string", "list"]
    fields = [Fact(f"f{i}", draw(st.sampled_from(types)), True) for i in range(draw(st.integers(1, 5)))]
    derived = [Fact(f"d{i}", draw(st.sampled_from(["bool", "int", "number", "string"])), False)
               for i in range(draw(st.integers(0, 4)))]
    field_entries = []
    for f in fields:
        entry: dict[str, Any] = {"name": f.name, "type": f.type, "description": "generated"}
        if f.type == "string":
            entry["choices"] = STRING_CHOICES
        elif f.type == "list":
            entry["choices"] = LIST_CHOICES
        field_entries.append(entry)

    rules: list[dict[str, Any]] = []
    derivable: dict[str, list[Any]] = {}  # derived fact -> the values rules derive for it so far
    constants: dict[str, list[Any]] = {}  # field -> the values its conditions name
    for i in range(draw(st.integers(1, max_rules))):
        layer = draw(st.integers(0, len(derived)))  # may test derived facts below this layer
        testable = fields + [d for d in derived[:layer] if d.name in derivable]
        when = {}
        for fact in draw(st.lists(st.sampled_from(testable), min_size=1, max_size=3, unique=True)):
            witness = draw(st.sampled_from(derivable[fact.name]) if not fact.field else _value(fact.type))
            when[fact.name] = draw(_condition(fact, witness))
            if fact.field:
                constants.setdefault(fact.name, []).extend(_constants(when[fact.name]))
        then: dict[str, Any] = {}
        rule: dict[str, Any] = {"id": f"r{i}", "title": f"Rule {i}", "when": when}
        kind = draw(st.sampled_from(["derive", "score", "score", "exclude", "note"]))
        if kind == "derive" and layer < len(derived):
            target = derived[draw(st.integers(layer, len(derived) - 1))]
            then["derive"] = {target.name: draw(_value(target.type))}
            derivable.setdefault(target.name, []).append(then["derive"][target.name])
        elif kind == "exclude":
            ex = draw(st.sampled_from(["techniques", "max_pressure", "only", "all"]))
            then["exclude"] = {
                "techniques": {"techniques": [f"t{draw(st.integers(0, n_tech - 1))}"]},
                "max_pressure": {"max_pressure": draw(st.sampled_from(PRESSURES))},
                "only": {"only": [f"t{draw(st.integers(0, n_tech - 1))}"]},
                "all": {"all": True},
            }[ex]
            rule["safety"] = True
        elif kind == "note":
            then["note"] = f"note {i}"
        if not then or draw(st.booleans()):
            weights = st.one_of(st.integers(-3, 5), st.sampled_from([0.5, -1.25, 2.75]))
            then["score"] = {f"t{j}": draw(weights)
                             for j in sorted(draw(st.sets(st.integers(0, n_tech - 1), min_size=1)))}
        rule.update(then=then, because="generated", source="s", evidence=draw(
            st.sampled_from(["guideline", "trial", "low", "claim"])))
        rules.append(rule)
    text = to_toml({
        "source": [{"id": "s", "kind": "guideline", "citation": "Generated (test)"}],
        "field": field_entries,
        "technique": techniques,
        "rule": rules,
    })
    return Pack(text, tuple(fields), tuple(r["id"] for r in rules),
                tuple((name, tuple(dict.fromkeys(values))) for name, values in sorted(constants.items())))


def _constants(condition: Any) -> list[Any]:
    """The values a condition (as written in TOML) names."""
    tests = condition if isinstance(condition, dict) else {"eq": condition}
    out: list[Any] = []
    for op, value in tests.items():
        if op != "given":
            out += list(value) if isinstance(value, (list, tuple)) else [value]
    return out


def _profile(pack: Pack, pick: Callable[[Sequence[Any]], Any]) -> dict[str, Any]:
    """A profile for ``pack``, each choice made by ``pick`` (Hypothesis' draw or a seeded ``random``).

    Numbers sit on a value some condition names, or just beside it (one
    either side for an int field; half, and the nearest float, either side
    for a number field, which also gets whole numbers as floats), or
    anywhere in the small range the rules use.
    """
    constants = dict(pack.constants)
    out: dict[str, Any] = {}
    for f in pack.fields:
        if not pick((True, False)):
            continue
        if f.type == "list":
            out[f.name] = [pick(LIST_CHOICES) for _ in range(pick((0, 1, 2, 3)))]
            continue
        named = [c for c in constants.get(f.name, ()) if isinstance(c, (int, float)) and not isinstance(c, bool)]
        if f.type in ("int", "number") and named and pick((True, True, False)):
            c = pick(named)
            if f.type == "int":
                out[f.name] = int(pick((math.floor(c) - 1, math.floor(c), math.ceil(c), math.ceil(c) + 1)))
            else:
                # The nearest floats, where the engine can read them (not 5e-324 beside 0).
                nearest = [x for x in (math.nextafter(c, -math.inf), math.nextafter(c, math.inf)) if representable(x)]
                near = pick((c, c - 1, c + 1, c - 0.5, c + 0.5, *nearest))
                out[f.name] = float(near) if pick((True, False)) and float(near).is_integer() else near
        else:
            out[f.name] = pick(_VALUES[f.type])
    if pick((True, False)):
        out["pain_weeks"] = pick(range(61))
    return out


#: What :func:`_value` draws from, for choosing with ``pick``.
_VALUES: dict[str, Sequence[Any]] = {
    "bool": (True, False),
    "int": tuple(range(-3, 13)),
    "number": (*range(-3, 13), -1.5, 0.5, 2.25, 7.0, 11.75),
    "string": STRING_CHOICES,
}


@st.composite
def pack_profiles(draw: st.DrawFn, pack: Pack) -> dict[str, Any]:
    """A valid profile for ``pack``: any subset of its fields (numbers often at a boundary), plus ``pain_weeks``."""
    return _profile(pack, lambda options: draw(st.sampled_from(options)))


def random_profiles(pack: Pack, rng: random.Random, n: int) -> list[dict[str, Any]]:
    """``n`` profiles as :func:`pack_profiles` draws them, from a seeded ``random`` (fast, for big runs)."""
    return [_profile(pack, rng.choice) for _ in range(n)]


# ---------------------------------------------------------------------------
# Oversized packs: each just past, or just inside, one of the engine's limits.

OVERSIZE = ("conditions", "shared", "fact_names", "value_tests", "in_values", "combinations", "rules")


def _rule(rid: str, when: dict[str, Any], then: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": rid, "title": "generated", "when": when, "then": then or {"score": {"t": 1}},
            "because": "generated", "source": "s", "evidence": "low"}


def oversized(kind: str, n: int) -> tuple[str, dict[str, Any]]:
    """A pack stressing one engine limit with size ``n``, and a profile that exercises it."""
    fields: list[dict[str, Any]] = []
    rules: list[dict[str, Any]] = []
    profile: dict[str, Any] = {}
    if kind == "conditions":  # one rule, n conditions that all hold
        fields = [{"name": f"f{i}", "type": "bool", "description": "g"} for i in range(n)]
        rules = [_rule("r", {f"f{i}": True for i in range(n)})]
        profile = {f"f{i}": True for i in range(n)}
    elif kind == "shared":  # n rules ending on the same condition
        fields = [{"name": "f", "type": "bool", "description": "g"}]
        rules = [_rule(f"r{i}", {"f": True}) for i in range(n)]
        profile = {"f": True}
    elif kind == "fact_names":  # n derived facts, each tested
        fields = [{"name": "f", "type": "bool", "description": "g"}]
        rules = [_rule("root", {"f": True}, {"derive": {f"d{i}": True for i in range(n)}})]
        rules += [_rule(f"r{i}", {f"d{i}": True}) for i in range(n)]
        profile = {"f": True}
    elif kind == "value_tests":  # n tests on one fact that all hold at once
        fields = [{"name": "f", "type": "int", "description": "g"}]
        rules = [_rule(f"r{i}", {"f": {"ne": 1000 + i}}) for i in range(n)]
        profile = {"f": 3}
    elif kind == "in_values":  # one 'in' with n values
        fields = [{"name": "f", "type": "int", "description": "g"}]
        rules = [_rule("r", {"f": {"in": list(range(n))}})]
        profile = {"f": n - 1}
    elif kind == "combinations":  # two facts derived with n values each, tested together
        fields = [{"name": "f", "type": "bool", "description": "g"}]
        for i in range(n):
            rules.append(_rule(f"a{i}", {"f": True}, {"derive": {"da": i}}))
            rules.append(_rule(f"b{i}", {"f": True}, {"derive": {"db": i}}))
        rules.append(_rule("pair", {"da": {"ge": 0}, "db": {"ge": 0}}))
        profile = {"f": True}
    elif kind == "rules":  # n distinct rules over 100 facts
        fields = [{"name": f"f{i}", "type": "int", "description": "g"} for i in range(100)]
        rules = [_rule(f"r{i}", {f"f{i % 100}": i // 100}) for i in range(n)]
        profile = {f"f{i}": 0 for i in range(100)}
    else:
        raise ValueError(kind)
    text = to_toml({
        "source": [{"id": "s", "kind": "guideline", "citation": "Generated (test)"}],
        "technique": [{"id": "t", "name": "T", "description": "g", "pressure": "light"}],
        "field": fields,
        "rule": rules,
    })
    return text, profile


#: Where each oversized kind stops loading (inclusive), per the loader's limits.
LIMITS = {"conditions": 16, "shared": 200, "fact_names": 499, "value_tests": 60, "in_values": 60,
          "combinations": 32, "rules": 4000}
