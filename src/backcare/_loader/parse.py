"""Parsing one file into raw entries, checking each value's shape against :data:`SCHEMA`."""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from .._engine import representable  # the engine owns how values compile
from .._errors import Problem, did_you_mean
from .._model import (
    EVIDENCE_LEVELS,
    INPUT_OPERATORS,
    OPERATORS,
    PRESSURES,
    RANKINGS,
    URGENCIES,
    Conclusion,
    Condition,
    Contraindication,
    Example,
    Exclude,
    Expectation,
    Origin,
    RedFlag,
    Refer,
    Rule,
    Source,
    Technique,
    Test,
)
from .._profile import FIELD_TYPES, FieldSpec
from .keys import (
    EXCLUDE_KEYS,
    EXPECT_KEYS,
    ID_RE,
    NAME_RE,
    REFER_KEYS,
    SAFETY_CONCLUSIONS,
    SCHEMA,
    THEN_KEYS,
    TOP_LEVEL,
    URGENCY_KEYS,
    Key,
)
from .read import _Locator

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib

# ---------------------------------------------------------------------------
# Parsing one file into raw entries, checking each value's shape.


@attrs.define
class _Ctx:
    """Where we are while checking one table, so problems say so."""

    problems: list[Problem]
    file: str
    locator: _Locator
    table: str
    index: int
    rule_id: str | None = None
    pack: str | None = None

    def line(self, key: str | None = None) -> int | None:
        if key is None:
            return self.locator.entry(self.table, self.index)
        return self.locator.key(self.table, self.index, key.split(".")[0])

    def problem(self, message: str, key: str | None = None) -> None:
        self.problems.append(Problem(message, self.file, self.line(key), self.rule_id, key))

    def origin(self, keys: Iterable[str] = ()) -> Origin:
        lines = tuple((k, line) for k in keys if (line := self.line(k)) is not None)
        return Origin(self.file, self.line(), self.pack, lines)


def _check_keys(ctx: _Ctx, data: Mapping[str, Any], schema: Mapping[str, Key], prefix: str = "") -> None:
    for key in data:
        if key not in schema:
            ctx.problem(
                f"unknown key {key!r}{did_you_mean(key, schema)}; expected one of {', '.join(schema)}",
                prefix + key,
            )
    for spec in schema.values():
        if spec.required and spec.name not in data:
            ctx.problem(f"missing required key {spec.name!r} ({spec.doc})", prefix + spec.name or None)


_MISSING = object()


def _get(ctx: _Ctx, data: Mapping[str, Any], key: str, kind: str, default: Any = None) -> Any:
    """Fetch ``data[key]`` checking its type; a problem and ``default`` if wrong."""
    value = data.get(key, _MISSING)
    if value is _MISSING:
        return default
    ok: Callable[[Any], bool] = {
        "string": lambda v: isinstance(v, str) and v.strip() != "",
        "id": lambda v: isinstance(v, str) and bool(ID_RE.match(v)),
        "name": lambda v: isinstance(v, str) and bool(NAME_RE.match(v)),
        "bool": lambda v: isinstance(v, bool),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
        "table": lambda v: isinstance(v, dict),
        "strings": lambda v: isinstance(v, list) and all(isinstance(i, str) and i for i in v),
        "ids": lambda v: isinstance(v, list) and all(isinstance(i, str) and ID_RE.match(i) for i in v),
    }[kind]
    if not ok(value):
        expected = {
            "string": "a non-empty string",
            "id": "an id (lower case letters, digits, '.', '-', '_'; at most 80 characters)",
            "name": "a name (lower_snake_case, starting with a letter)",
            "bool": "true or false",
            "int": "an integer",
            "number": "a finite number",
            "table": "a table",
            "strings": "a list of non-empty strings",
            "ids": "a list of ids",
        }[kind]
        ctx.problem(f"{key!r} must be {expected}, got {value!r}"[:300], key)
        return default
    return value


def _choice(ctx: _Ctx, data: Mapping[str, Any], key: str, choices: Sequence[str]) -> Any:
    value = _get(ctx, data, key, "string")
    if value is not None and value not in choices:
        ctx.problem(
            f"{key!r} must be one of {', '.join(choices)}, got {value!r}{did_you_mean(value, choices)}", key
        )
        return None
    return value


@attrs.define
class _RawPack:
    """One pack's entries before merging, each with its origin."""

    name: str
    fields: list[FieldSpec] = attrs.Factory(list)
    field_origins: dict[str, Origin] = attrs.Factory(dict)
    techniques: list[tuple[Technique, bool]] = attrs.Factory(list)
    sources: list[tuple[Source, bool]] = attrs.Factory(list)
    rules: list[tuple[Rule, bool]] = attrs.Factory(list)
    red_flags: list[tuple[RedFlag, bool]] = attrs.Factory(list)
    contraindications: list[tuple[Contraindication, bool]] = attrs.Factory(list)
    #: Urgency level -> (action text, max_pressure or None, where it was set).
    urgency: dict[str, tuple[str, str | None, Origin]] = attrs.Factory(dict)
    examples: list[Example] = attrs.Factory(list)
    disable: list[tuple[str, Origin]] = attrs.Factory(list)
    #: The [pack] table: name, version, description, ranking (each at most once per pack).
    meta: dict[str, str] = attrs.Factory(dict)
    meta_origin: Origin | None = None



def _parse_text(text: str, shown: str, pack: _RawPack, problems: list[Problem]) -> None:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        problems.append(Problem(f"not valid TOML: {exc}", shown, int(m.group(1)) if m else None))
        return
    locator = _Locator(text)
    for key in data:
        if key not in TOP_LEVEL:
            problems.append(
                Problem(
                    f"unknown top-level key {key!r}{did_you_mean(key, TOP_LEVEL)}; "
                    f"expected one of {', '.join(sorted(TOP_LEVEL))}",
                    shown,
                    key=key,
                )
            )
    for table in ("pack", "urgency"):
        if table in data:
            ctx = _Ctx(problems, shown, locator, table, 0)
            if not isinstance(data[table], dict):
                ctx.problem(f"[{table}] must be a table", table)
                continue
            _check_keys(ctx, data[table], SCHEMA[table])
    if isinstance(data.get("pack"), dict):
        _parse_pack_table(_Ctx(problems, shown, locator, "pack", 0), data["pack"], pack)
    for level, entry in data.get("urgency", {}).items() if isinstance(data.get("urgency"), dict) else ():
        if level not in URGENCIES:
            continue  # reported by the key check above
        ctx = _Ctx(problems, shown, locator, f"urgency.{level}", 0)
        if not isinstance(entry, dict):
            ctx.problem(f"[urgency.{level}] must be a table with action = \"...\"", f"urgency.{level}")
            continue
        _check_keys(ctx, entry, URGENCY_KEYS, f"urgency.{level}.")
        action = _get(ctx, entry, "action", "string")
        limit = _choice(ctx, entry, "max_pressure", PRESSURES)
        if limit is not None and level != "routine":
            ctx.problem(f"max_pressure applies only to [urgency.routine]: a {level} referral withholds every "
                        "technique", f"urgency.{level}.max_pressure")
        elif action is not None:
            line = next((i + 1 for i, s in enumerate(locator.lines)
                         if re.match(rf"\s*\[\s*urgency\.{level}\s*\]", s)), None)
            pack.urgency[level] = (action, limit, Origin(shown, line, pack.name))
    disable = data.get("disable", [])
    if not (isinstance(disable, list) and all(isinstance(d, str) for d in disable)):
        problems.append(Problem("'disable' must be a list of rule ids", shown, key="disable"))
    else:
        line = next((i + 1 for i, s in enumerate(locator.lines) if s.lstrip().startswith("disable")), None)
        pack.disable += [(d, Origin(shown, line)) for d in disable]

    parsers: dict[str, Callable[[_Ctx, dict[str, Any], _RawPack], None]] = {
        "field": _parse_field,
        "technique": _parse_technique,
        "source": _parse_source,
        "rule": _parse_rule,
        "red_flag": _parse_red_flag,
        "contraindication": _parse_contraindication,
        "example": _parse_example,
    }
    for table, parse in parsers.items():
        entries = data.get(table, [])
        if not isinstance(entries, list):
            problems.append(Problem(f"'{table}' must be an array of tables: write [[{table}]]", shown, key=table))
            continue
        for index, entry in enumerate(entries):
            ctx = _Ctx(problems, shown, locator, table, index, pack=pack.name)
            if not isinstance(entry, dict):
                ctx.problem(f"each [[{table}]] must be a table")
                continue
            ident = entry.get("id", entry.get("name"))
            ctx.rule_id = ident if isinstance(ident, str) else None
            _check_keys(ctx, entry, SCHEMA[table])
            parse(ctx, entry, pack)


def _parse_pack_table(ctx: _Ctx, d: dict[str, Any], pack: _RawPack) -> None:
    """The [pack] table: what the pack calls itself, for provenance, and the ranking it asks for."""
    values = {k: _get(ctx, d, k, "string") for k in ("name", "version", "description")}
    values["ranking"] = _choice(ctx, d, "ranking", RANKINGS)
    for key, value in values.items():
        if value is None:
            continue
        if key in pack.meta and pack.meta[key] != value:
            ctx.problem(f"[pack] {key} is {pack.meta[key]!r} in another file of this pack; a pack has one {key}",
                        key)
            continue
        pack.meta[key] = value
    if pack.meta_origin is None:
        pack.meta_origin = ctx.origin()


def _parse_field(ctx: _Ctx, d: dict[str, Any], pack: _RawPack) -> None:
    name = _get(ctx, d, "name", "name")
    ftype = _choice(ctx, d, "type", FIELD_TYPES)
    desc = _get(ctx, d, "description", "string")
    lo = _get(ctx, d, "minimum", "number")
    hi = _get(ctx, d, "maximum", "number")
    choices = _get(ctx, d, "choices", "strings")
    label = _get(ctx, d, "label", "string")
    if ftype and (lo is not None or hi is not None) and ftype not in ("int", "number"):
        ctx.problem("minimum and maximum apply only to int and number fields", "minimum")
    if ftype and choices is not None and ftype not in ("string", "list"):
        ctx.problem("choices apply only to string and list fields", "choices")
    if name and ftype and desc:
        spec = FieldSpec(
            name=name,
            type=ftype,
            description=desc,
            minimum=lo,
            maximum=hi,
            choices=tuple(choices) if choices else None,
            label=label,
        )
        pack.fields.append(spec)
        pack.field_origins[name] = ctx.origin()


def _parse_technique(ctx: _Ctx, d: dict[str, Any], pack: _RawPack) -> None:
    tid, name, desc = (_get(ctx, d, k, t) for k, t in (("id", "id"), ("name", "string"), ("description", "string")))
    pressure = _choice(ctx, d, "pressure", PRESSURES)
    replace = _get(ctx, d, "replace", "bool", False)
    if tid and name and desc and pressure:
        pack.techniques.append((Technique(tid, name, desc, pressure, ctx.origin(d)), replace))


def _parse_source(ctx: _Ctx, d: dict[str, Any], pack: _RawPack) -> None:
    sid = _get(ctx, d, "id", "id")
    kind = _choice(ctx, d, "kind", ("seed", "review", "trial", "guideline", "study", "convention"))
    citation = _get(ctx, d, "citation", "string")
    passage = _get(ctx, d, "passage", "string")
    replace = _get(ctx, d, "replace", "bool", False)
    if sid and kind and citation:
        pack.sources.append((Source(sid, kind, citation, passage, ctx.origin(d)), replace))


def _parse_test(ctx: _Ctx, fact: str, raw: Any) -> tuple[Test, ...] | None:
    key = f"when.{fact}"
    if not isinstance(raw, dict):
        raw = {"eq": raw}
    if not raw:
        ctx.problem(f"condition on {fact!r} has no test", key)
        return None
    tests = []
    for op, value in raw.items():
        if op not in OPERATORS:
            hint = f" (did you mean {_OPERATOR_HINTS[op]!r}?)" if op in _OPERATOR_HINTS else did_you_mean(op, OPERATORS)
            ctx.problem(
                f"unknown operator {op!r}{hint} in condition on {fact!r}; "
                f"expected one of {', '.join(OPERATORS)}",
                key,
            )
            continue
        if op == "in":
            if not (isinstance(value, list) and value and all(_is_scalar(v) for v in value)):
                ctx.problem(f"'in' on {fact!r} needs a non-empty list of values{_NUMBER_LIMITS}", key)
                continue
            value = tuple(value)
        elif not _is_scalar(value):
            ctx.problem(f"{op!r} on {fact!r} needs a string, number or boolean{_NUMBER_LIMITS}, got {value!r}"[:300], key)
            continue
        elif op in ("gt", "ge", "lt", "le") and (isinstance(value, bool) or not isinstance(value, (int, float))):
            ctx.problem(f"{op!r} on {fact!r} compares numbers, got {value!r}", key)
            continue
        elif op == "lacks" and not isinstance(value, str):
            ctx.problem(f"'lacks' on {fact!r} needs the id a list must not include, got {value!r}"[:300], key)
            continue
        elif op == "given" and not isinstance(value, bool):
            ctx.problem(f"'given' on {fact!r} takes true or false, got {value!r}"[:300], key)
            continue
        tests.append(Test(op, value))
    inputs = [t.op for t in tests if t.op in INPUT_OPERATORS]
    if inputs and len(raw) > 1:
        ctx.problem(f"{inputs[0]!r} tests the profile as given and must be the only test in its condition on "
                    f"{fact!r}", key)
        return None
    return tuple(tests) if len(tests) == len(raw) else None


#: Spellings from other rule languages, for suggestions only: never accepted.
_OPERATOR_HINTS = {"gte": "ge", "lte": "le", "neq": "ne", "equals": "eq", "==": "eq", "!=": "ne",
                   ">": "gt", ">=": "ge", "<": "lt", "<=": "le", "has": "contains", "includes": "contains"}


#: What the engine can represent (see ``_engine.representable``), for error messages.
_NUMBER_LIMITS = (" (numbers: finite, at most 2**53 in size, and not a single digit with an exponent"
                  " such as 1e-05 or 1e+16, which durable-rules cannot parse)")


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, bool, float)) and representable(value)


def _parse_rule(ctx: _Ctx, d: dict[str, Any], pack: _RawPack) -> None:
    rid = _get(ctx, d, "id", "id")
    title = _get(ctx, d, "title", "string")
    because = _get(ctx, d, "because", "string")
    source = _get(ctx, d, "source", "id")
    evidence = _choice(ctx, d, "evidence", EVIDENCE_LEVELS)
    caveat = _get(ctx, d, "caveat", "string")
    caveat_source = _get(ctx, d, "caveat_source", "id")
    safety = _get(ctx, d, "safety", "bool", False)
    replace = _get(ctx, d, "replace", "bool", False)
    if caveat_source and not caveat:
        ctx.problem("caveat_source needs a caveat text", "caveat_source")

    when_raw = _get(ctx, d, "when", "table", {})
    if "when" in d and not when_raw:
        ctx.problem("'when' needs at least one condition", "when")
    conditions = []
    for fact in sorted(when_raw):
        tests = _parse_test(ctx, fact, when_raw[fact])
        if tests is not None:
            conditions.append(Condition(fact, tests))

    then = _parse_then(ctx, _get(ctx, d, "then", "table", {}))
    if then is not None and not safety:
        used = [k for k in SAFETY_CONCLUSIONS if getattr(then, k)]
        if used:
            ctx.problem(f"{', '.join(used)} is a safety conclusion: mark the rule with safety = true", "then")
    if rid is None:
        return
    # Keep a rule even when some keys are wrong, so that the cross-reference
    # checks still run on it and every problem is reported in one pass. A
    # pack with any problem is refused, so the placeholders never reach use.
    pack.rules.append(
        (
            Rule(rid, title or "", tuple(conditions), then or Conclusion(), because or "", source or "",
                 evidence or "claim", caveat, caveat_source, safety, ctx.origin(d)),
            replace,
        )
    )


def _parse_then(ctx: _Ctx, raw: dict[str, Any]) -> Conclusion | None:
    if not raw:
        ctx.problem("'then' needs a conclusion: " + ", ".join(THEN_KEYS), "then")
        return None
    before = len(ctx.problems)
    _check_keys(ctx, raw, THEN_KEYS, "then.")
    derive: list[tuple[str, Any]] = []
    if "derive" in raw:
        value = raw["derive"]
        pairs = {value: True} if isinstance(value, str) else value if isinstance(value, dict) else None
        if not pairs:
            ctx.problem("then.derive must be a fact name or a table of { fact = value }", "then.derive")
        else:
            for fact, v in sorted(pairs.items()):
                if not NAME_RE.match(fact):
                    ctx.problem(f"derived fact name {fact!r} must be lower_snake_case", "then.derive")
                elif not _is_scalar(v):
                    ctx.problem(f"derived fact {fact!r} needs a string, number or boolean value{_NUMBER_LIMITS}", "then.derive")
                else:
                    derive.append((fact, v))
    score: list[tuple[str, float]] = []
    if "score" in raw:
        value = raw["score"]
        if not isinstance(value, dict) or not value:
            ctx.problem("then.score must be a table of { technique_id = weight }", "then.score")
        else:
            for tech, w in sorted(value.items()):
                if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w):
                    ctx.problem(f"weight for {tech!r} must be a finite number, got {w!r}", "then.score")
                else:
                    score.append((tech, float(w)))
    flags = _id_list(ctx, raw, "flag", "a red flag id")
    implied = _id_list(ctx, raw, "condition", "a contraindication id")
    exclude = None
    if "exclude" in raw:
        exclude = _parse_exclude(ctx, raw["exclude"], "then.exclude")
    refer = None
    if "refer" in raw:
        if not isinstance(raw["refer"], dict):
            ctx.problem("then.refer must be a table { urgency, suspected }", "then.refer")
        else:
            _check_keys(ctx, raw["refer"], REFER_KEYS, "then.refer.")
            urgency = _choice(ctx, raw["refer"], "urgency", URGENCIES)
            suspected = _get(ctx, raw["refer"], "suspected", "string")
            if urgency and suspected:
                refer = Refer(urgency, suspected)
    note = _get(ctx, raw, "note", "string")
    warn = _get(ctx, raw, "warn", "string")
    if len(ctx.problems) > before:
        return None
    return Conclusion(tuple(derive), tuple(score), tuple(sorted(set(flags))), tuple(sorted(set(implied))),
                      exclude, refer, note, warn)


def _id_list(ctx: _Ctx, raw: dict[str, Any], key: str, what: str) -> list[str]:
    """``then.flag`` and ``then.condition``: one id or a list of them."""
    values = raw.get(key, [])
    if isinstance(values, str):
        values = [values]
    if not (isinstance(values, list) and all(isinstance(v, str) for v in values)):
        ctx.problem(f"then.{key} must be {what} or a list of them", f"then.{key}")
        return []
    return values


def _parse_exclude(ctx: _Ctx, raw: Any, key: str) -> Exclude | None:
    if not isinstance(raw, dict):
        ctx.problem(f"{key} must be a table {{ techniques, max_pressure, only, all }}", key)
        return None
    _check_keys(ctx, raw, EXCLUDE_KEYS, key + ".")
    techniques = _get(ctx, raw, "techniques", "ids", [])
    only = _get(ctx, raw, "only", "ids")
    max_pressure = _choice(ctx, raw, "max_pressure", PRESSURES)
    all_ = _get(ctx, raw, "all", "bool", False)
    if not (techniques or only is not None or max_pressure or all_):
        ctx.problem(f"{key} rules out nothing: give techniques, max_pressure, only or all = true", key)
        return None
    return Exclude(tuple(sorted(set(techniques))), max_pressure, tuple(sorted(set(only))) if only is not None else None, all_)


def _parse_red_flag(ctx: _Ctx, d: dict[str, Any], pack: _RawPack) -> None:
    fid = _get(ctx, d, "id", "id")
    desc = _get(ctx, d, "description", "string")
    suspected = _get(ctx, d, "suspected", "string")
    urgency = _choice(ctx, d, "urgency", URGENCIES)
    source = _get(ctx, d, "source", "id")
    replace = _get(ctx, d, "replace", "bool", False)
    if fid and desc and suspected and urgency and source:
        pack.red_flags.append((RedFlag(fid, desc, suspected, urgency, source, ctx.origin()), replace))


def _parse_contraindication(ctx: _Ctx, d: dict[str, Any], pack: _RawPack) -> None:
    cid = _get(ctx, d, "id", "id")
    desc = _get(ctx, d, "description", "string")
    effect = _choice(ctx, d, "effect", ("no_massage", "exclude", "avoid_area", "consult_first"))
    because = _get(ctx, d, "because", "string")
    source = _get(ctx, d, "source", "id")
    replace = _get(ctx, d, "replace", "bool", False)
    exclude = None
    limits = {k: d[k] for k in ("exclude", "max_pressure", "only") if k in d}
    if effect == "exclude":
        exclude = _parse_exclude(
            ctx, {("techniques" if k == "exclude" else k): v for k, v in limits.items()}, "exclude"
        )
    elif effect == "no_massage":
        exclude = Exclude(all=True)
    if limits and effect != "exclude":
        ctx.problem(f"{', '.join(limits)} apply only with effect = \"exclude\"", next(iter(limits)))
    refer = None
    urgency = _choice(ctx, d, "refer", URGENCIES)
    suspected = _get(ctx, d, "suspected", "string")
    if urgency:
        if suspected:
            refer = Refer(urgency, suspected)
        else:
            ctx.problem("refer needs suspected = \"...\" (what the clinician should rule out)", "refer")
    elif suspected:
        ctx.problem("suspected applies only with refer", "suspected")
    if cid and desc and effect and because and source and (effect != "exclude" or exclude):
        pack.contraindications.append(
            (Contraindication(cid, desc, effect, because, source, exclude, refer, ctx.origin()), replace)
        )


def _parse_example(ctx: _Ctx, d: dict[str, Any], pack: _RawPack) -> None:
    name = _get(ctx, d, "name", "string")
    profile = _get(ctx, d, "profile", "table")
    expect_raw = _get(ctx, d, "expect", "table")
    if expect_raw is None:
        return
    before = len(ctx.problems)
    _check_keys(ctx, expect_raw, EXPECT_KEYS, "expect.")
    kw: dict[str, Any] = {}
    for key, spec in EXPECT_KEYS.items():
        if key not in expect_raw:
            continue
        kind = {"list of ids": "ids", "id": "id", "int": "int", "bool": "bool", "table": "table"}.get(spec.type)
        if key == "referral":
            value = _choice(ctx, expect_raw, key, (*URGENCIES, "none"))
        else:
            value = _get(ctx, expect_raw, key, kind or "string")
        if value is None:
            continue
        if isinstance(value, list):
            value = tuple(value)
        elif isinstance(value, dict):
            value = tuple(sorted(value.items()))
        kw[key] = value
    if name and profile is not None and len(ctx.problems) == before:
        pack.examples.append(Example(name, tuple(sorted(profile.items())), Expectation(**kw), ctx.origin()))

