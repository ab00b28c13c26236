"""Reading rule packs: TOML files in, a validated :class:`Rulebase` out.

Rule files are data. They are parsed with ``tomllib`` and nothing in them is
ever executed or imported. Every problem found is collected with its file,
line, rule id and key, and reported together in one :class:`RuleError`, so a
rule author fixes a pack in one pass.

The accepted keys are described once, in :data:`SCHEMA`; the loader checks
files against it and the documentation renders it.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import attrs

from ._engine import pattern_key, representable  # the engine owns how values and conditions compile
from ._errors import Problem, RuleError, did_you_mean
from ._model import (
    EVIDENCE_LEVELS,
    OPERATORS,
    PRESSURES,
    URGENCIES,
    Condition,
    Conclusion,
    Contraindication,
    Example,
    Exclude,
    Expectation,
    Origin,
    RedFlag,
    Refer,
    Rule,
    Rulebase,
    Source,
    Technique,
    Test,
)
from ._profile import FIELD_TYPES, FieldSpec, core_fields

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib

ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,79}$")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

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

# ---------------------------------------------------------------------------
# The schema of a rule file, written once.


@attrs.frozen
class Key:
    """One key a rule-file table accepts."""

    name: str
    type: str
    doc: str
    required: bool = False


def _keys(*keys: Key) -> dict[str, Key]:
    return {k.name: k for k in keys}


_REPLACE = Key("replace", "bool", "Set to true to replace an entry of the same id from an earlier pack.")

#: Every table a rule file may contain, and the keys each accepts.
SCHEMA: dict[str, dict[str, Key]] = {
    "pack": _keys(
        Key("name", "string", "A short name for the pack, shown in errors and docs."),
        Key("description", "string", "What the pack is for."),
    ),
    "field": _keys(
        Key("name", "name", "The profile field name (lower_snake_case).", True),
        Key("type", "string", "One of " + ", ".join(FIELD_TYPES) + ".", True),
        Key("description", "string", "What the field means, for forms and docs.", True),
        Key("minimum", "number", "Smallest accepted value (int and number fields)."),
        Key("maximum", "number", "Largest accepted value (int and number fields)."),
        Key("choices", "list of strings", "The accepted values (string fields, or items of list fields)."),
    ),
    "technique": _keys(
        Key("id", "id", "Technique id, used in rules and results.", True),
        Key("name", "string", "Display name.", True),
        Key("description", "string", "What the therapist does.", True),
        Key("pressure", "string", "How firm it is: " + ", ".join(PRESSURES) + ".", True),
        _REPLACE,
    ),
    "source": _keys(
        Key("id", "id", "Citation key that rules name in `source`.", True),
        Key("kind", "string", "seed, review, trial, guideline, study or convention.", True),
        Key("citation", "string", "The full reference.", True),
        Key("passage", "string", "For the seed: the passage the rule encodes."),
        _REPLACE,
    ),
    "rule": _keys(
        Key("id", "id", "Unique rule id.", True),
        Key("title", "string", "One line saying what the rule does.", True),
        Key("when", "table", "Conditions: fact name = value, or = { op = value, ... }.", True),
        Key("then", "table", "The conclusion: derive, score, flag, exclude, refer, note, warn.", True),
        Key("because", "string", "Why the conclusion follows, in words a person can read.", True),
        Key("source", "id", "The source id the rule encodes.", True),
        Key("evidence", "string", "How strong the evidence is: " + ", ".join(EVIDENCE_LEVELS) + ".", True),
        Key("caveat", "string", "What the evidence says against or beyond the claim."),
        Key("caveat_source", "id", "The source id behind the caveat."),
        Key("safety", "bool", "Marks a safety rule; required for flag, exclude, refer and warn."),
        _REPLACE,
    ),
    "red_flag": _keys(
        Key("id", "id", "The id a profile lists in red_flags.", True),
        Key("description", "string", "The sign in plain words.", True),
        Key("suspected", "string", "The serious condition it may point to.", True),
        Key("urgency", "string", "emergency, urgent or routine.", True),
        Key("source", "id", "The source id.", True),
        _REPLACE,
    ),
    "contraindication": _keys(
        Key("id", "id", "The id a profile lists in conditions.", True),
        Key("description", "string", "The condition in plain words.", True),
        Key("effect", "string", "no_massage, exclude, avoid_area or consult_first.", True),
        Key("because", "string", "Why it limits massage.", True),
        Key("source", "id", "The source id.", True),
        Key("exclude", "list of ids", "Techniques ruled out (effect exclude)."),
        Key("max_pressure", "string", "Rule out techniques firmer than this (effect exclude)."),
        Key("only", "list of ids", "Rule out every technique but these (effect exclude)."),
        Key("refer", "string", "Also refer with this urgency."),
        Key("suspected", "string", "With refer: what the clinician should rule out."),
        _REPLACE,
    ),
    "urgency": _keys(*(Key(u, "table", f"`action` text for a {u} referral.") for u in URGENCIES)),
    "example": _keys(
        Key("name", "string", "The example's name, shown when it fails.", True),
        Key("profile", "table", "The profile to recommend for.", True),
        Key("expect", "table", "What the result must show.", True),
    ),
}

THEN_KEYS = _keys(
    Key("derive", "string or table", "Derive a fact: a name (value true) or { name = value, ... }."),
    Key("score", "table", "Add weights to techniques: { technique_id = weight, ... }."),
    Key("flag", "id or list of ids", "Raise red flags (safety)."),
    Key("exclude", "table", "Rule out techniques: { techniques, max_pressure, only, all } (safety)."),
    Key("refer", "table", "Refer to a clinician: { urgency, suspected } (safety)."),
    Key("note", "string", "Add a note to the result."),
    Key("warn", "string", "Add a warning to the result (safety)."),
)
EXCLUDE_KEYS = _keys(
    Key("techniques", "list of ids", "Techniques ruled out."),
    Key("max_pressure", "string", "Rule out techniques firmer than this."),
    Key("only", "list of ids", "Rule out every technique but these."),
    Key("all", "bool", "Rule out every technique."),
)
REFER_KEYS = _keys(
    Key("urgency", "string", "emergency, urgent or routine.", True),
    Key("suspected", "string", "What the clinician should rule out.", True),
)
EXPECT_KEYS = _keys(
    Key("first", "id", "This technique ranks first."),
    Key("order", "list of ids", "These techniques are recommended, in this relative order."),
    Key("top_n", "int", "How many places `in_top` looks at (default 3)."),
    Key("in_top", "list of ids", "These techniques are among the first `top_n`."),
    Key("absent", "list of ids", "These techniques are not recommended."),
    Key("excluded", "list of ids", "These techniques are in `excluded`."),
    Key("fired", "list of ids", "These rules fired."),
    Key("not_fired", "list of ids", "These rules did not fire."),
    Key("referral", "string", "The referral urgency, or none."),
    Key("no_techniques", "bool", "No technique is recommended (true) or at least one is (false)."),
    Key("facts", "table", "These facts were derived, with these values."),
)
TOP_LEVEL = {*SCHEMA, "disable"}
SAFETY_CONCLUSIONS = ("flag", "exclude", "refer", "warn")

# ---------------------------------------------------------------------------
# Locating entries in the file text: tomllib gives no positions for values.


class _Locator:
    """Find the line of the n-th ``[[table]]`` of a file and of a key in it."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.headers: dict[str, list[int]] = {}
        for i, line in enumerate(self.lines):
            m = re.match(r"\s*\[\[\s*([A-Za-z0-9_.-]+)\s*\]\]", line)
            if m:
                self.headers.setdefault(m.group(1), []).append(i)

    def entry(self, table: str, index: int) -> int | None:
        found = self.headers.get(table, [])
        return found[index] + 1 if index < len(found) else None

    def key(self, table: str, index: int, key: str) -> int | None:
        start = self.entry(table, index)
        if start is None:
            return None
        pattern = re.compile(rf"\s*(\[\s*{re.escape(table)}\.)?{re.escape(key)}\b")
        for i in range(start, len(self.lines)):
            line = self.lines[i]
            if i >= start and re.match(r"\s*\[\[", line):
                break
            if pattern.match(line):
                return i + 1
        return start


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
    urgency: dict[str, str] = attrs.Factory(dict)
    examples: list[Example] = attrs.Factory(list)
    disable: list[tuple[str, Origin]] = attrs.Factory(list)


@attrs.frozen
class PackText:
    """A rule pack held in memory: a display name and each file's (display name, TOML text).

    The loader reads a pack from disk into one of these before parsing, and
    accepts one in place of a path, so a recommender can be rebuilt where its
    rule files do not exist (another process, another machine). Problems name
    the files by their display names, exactly as when read from disk.
    """

    name: str
    files: tuple[tuple[str, str], ...]


def _read_pack(path: Path, problems: list[Problem]) -> PackText | None:
    """Read a pack's files; None (and a problem) if the pack is missing."""
    if not path.exists():
        problems.append(Problem(f"rule pack not found: {path}", str(path)))
        return None
    files = pack_files(path)
    if not files:
        problems.append(Problem("no .toml rule files in this directory", str(path)))
    texts = []
    for file in files:
        try:
            texts.append((str(file), file.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(f"cannot read rule file: {exc}", str(file)))
    return PackText(str(path), tuple(texts))


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
    for level, entry in data.get("urgency", {}).items() if isinstance(data.get("urgency"), dict) else ():
        if level in URGENCIES and isinstance(entry, dict) and isinstance(entry.get("action"), str):
            pack.urgency[level] = entry["action"]
        elif level in URGENCIES:
            problems.append(Problem(f"[urgency.{level}] needs action = \"...\"", shown, key=f"urgency.{level}"))
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


def _parse_field(ctx: _Ctx, d: dict[str, Any], pack: _RawPack) -> None:
    name = _get(ctx, d, "name", "name")
    ftype = _choice(ctx, d, "type", FIELD_TYPES)
    desc = _get(ctx, d, "description", "string")
    lo = _get(ctx, d, "minimum", "number")
    hi = _get(ctx, d, "maximum", "number")
    choices = _get(ctx, d, "choices", "strings")
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
        )
        pack.fields.append(spec)
        pack.field_origins[name] = ctx.origin()


def _parse_technique(ctx: _Ctx, d: dict[str, Any], pack: _RawPack) -> None:
    tid, name, desc = (_get(ctx, d, k, t) for k, t in (("id", "id"), ("name", "string"), ("description", "string")))
    pressure = _choice(ctx, d, "pressure", PRESSURES)
    replace = _get(ctx, d, "replace", "bool", False)
    if tid and name and desc and pressure:
        pack.techniques.append((Technique(tid, name, desc, pressure, ctx.origin()), replace))


def _parse_source(ctx: _Ctx, d: dict[str, Any], pack: _RawPack) -> None:
    sid = _get(ctx, d, "id", "id")
    kind = _choice(ctx, d, "kind", ("seed", "review", "trial", "guideline", "study", "convention"))
    citation = _get(ctx, d, "citation", "string")
    passage = _get(ctx, d, "passage", "string")
    replace = _get(ctx, d, "replace", "bool", False)
    if sid and kind and citation:
        pack.sources.append((Source(sid, kind, citation, passage, ctx.origin()), replace))


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
        tests.append(Test(op, value))
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
    flags = raw.get("flag", [])
    if isinstance(flags, str):
        flags = [flags]
    if not (isinstance(flags, list) and all(isinstance(f, str) for f in flags)):
        ctx.problem("then.flag must be a red flag id or a list of them", "then.flag")
        flags = []
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
    return Conclusion(tuple(derive), tuple(score), tuple(sorted(set(flags))), exclude, refer, note, warn)


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


# ---------------------------------------------------------------------------
# Merging packs, then checking references across the merged rulebase.


def default_rules_path() -> Path:
    """The default pack: inside the installed package, or the checkout's rules/."""
    packaged = Path(str(resources.files("backcare"))) / "rules"
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parents[2] / "rules"
    if checkout.is_dir():
        return checkout
    raise RuleError(f"the default rule pack is missing: looked in {packaged} and {checkout}")


def pack_files(path: Path) -> list[Path]:
    """The TOML files of a pack: the file itself, or a directory's, sorted."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*.toml") if p.is_file())
    return [path]


def load(packs: Sequence[Path | str | PackText], *, allow_safety_overrides: bool = False) -> Rulebase:
    """Parse, merge and validate packs in order; raise one RuleError listing every problem.

    A pack is a path (a TOML file or a directory of them) or a :class:`PackText`.
    """
    return load_with_sources(packs, allow_safety_overrides=allow_safety_overrides)[0]


def load_with_sources(
    packs: Sequence[Path | str | PackText], *, allow_safety_overrides: bool = False
) -> tuple[Rulebase, tuple[PackText, ...]]:
    """:func:`load`, also returning the text of every pack exactly as it was parsed."""
    problems: list[Problem] = []
    raw_packs: list[_RawPack] = []
    sources: list[PackText] = []
    for item in packs:
        if isinstance(item, PackText):
            source: PackText | None = item
            if not item.files:
                problems.append(Problem("no rule files in this in-memory pack", item.name))
        else:
            source = _read_pack(Path(item), problems)
        if source is None:
            continue
        sources.append(source)
        pack = _RawPack(source.name)
        for shown, text in source.files:
            _parse_text(text, shown, pack, problems)
        raw_packs.append(pack)
    rulebase = _merge(raw_packs, problems, allow_safety_overrides)
    if rulebase is not None:
        problems += validate(rulebase)
    if problems:
        raise RuleError(_dedupe(problems))
    assert rulebase is not None
    return rulebase, tuple(sources)


def _dedupe(problems: Iterable[Problem]) -> list[Problem]:
    seen: dict[Problem, None] = {}
    for p in problems:
        seen.setdefault(p, None)
    return list(seen)


def _merge_entries(
    entries_by_pack: Iterable[tuple[str, list[tuple[Any, bool]]]],
    what: str,
    problems: list[Problem],
) -> tuple[dict[str, Any], list[tuple[Any, Any]]]:
    """Merge id-keyed entries across packs: unique within a pack, replaced only on request.

    Returns the merged entries and the (old, new) pairs that were replaced.
    """
    merged: dict[str, Any] = {}
    replaced: list[tuple[Any, Any]] = []
    for _pack, entries in entries_by_pack:
        seen_here: dict[str, Any] = {}
        for entry, replace in entries:
            where = entry.origin or Origin("<rules>")
            if entry.id in seen_here:
                first = seen_here[entry.id].origin
                problems.append(
                    Problem(f"duplicate {what} id {entry.id!r} (first defined at {first})", where.file,
                            where.line, entry.id, "id")
                )
                continue
            seen_here[entry.id] = entry
            if entry.id in merged:
                if not replace:
                    problems.append(
                        Problem(
                            f"{what} {entry.id!r} is already defined at {merged[entry.id].origin}; "
                            "add replace = true to override it",
                            where.file, where.line, entry.id, "id",
                        )
                    )
                    continue
                replaced.append((merged[entry.id], entry))
            elif replace:
                problems.append(
                    Problem(
                        f"replace = true but no earlier pack defines {what} {entry.id!r}"
                        f"{did_you_mean(entry.id, merged)}",
                        where.file, where.line, entry.id, "replace",
                    )
                )
            merged[entry.id] = entry
    return merged, replaced


def _merge(raw_packs: list[_RawPack], problems: list[Problem], allow_safety_overrides: bool) -> Rulebase | None:
    fields = dict(core_fields())
    for pack in raw_packs:
        for spec in pack.fields:
            origin = pack.field_origins[spec.name]
            if spec.name in fields:
                problems.append(
                    Problem(f"profile field {spec.name!r} is already defined", origin.file, origin.line, spec.name,
                            "name")
                )
            else:
                fields[spec.name] = spec
    techniques, _ = _merge_entries(((p.name, p.techniques) for p in raw_packs), "technique", problems)
    sources, _ = _merge_entries(((p.name, p.sources) for p in raw_packs), "source", problems)
    red_flags, rf_replaced = _merge_entries(((p.name, p.red_flags) for p in raw_packs), "red flag", problems)
    contras, ci_replaced = _merge_entries(
        ((p.name, p.contraindications) for p in raw_packs), "contraindication", problems
    )

    # Catalogue entries are rules too: compile them before merging rules so that
    # disabling or replacing them goes through the same safety checks.
    def catalogue_rules(p: _RawPack) -> list[tuple[Rule, bool]]:
        out = [(_red_flag_rule(f), rep) for f, rep in p.red_flags]
        out += [(_contraindication_rule(c), rep) for c, rep in p.contraindications]
        return out

    rules, replaced = _merge_entries(
        ((p.name, catalogue_rules(p) + p.rules) for p in raw_packs), "rule", problems
    )
    overrides: list[str] = []
    disabled: list[str] = []
    for old, new in replaced:
        if old.safety:
            note = f"safety rule {old.id!r} replaced by {new.origin}"
            if allow_safety_overrides:
                overrides.append(note)
            else:
                problems.append(
                    Problem(
                        f"rule {old.id!r} is a safety rule: replacing it needs "
                        "Recommender(..., allow_safety_overrides=True)",
                        new.origin.file if new.origin else None, new.origin.line if new.origin else None,
                        old.id, "replace",
                    )
                )
    for pack in raw_packs:
        for rule_id, origin in pack.disable:
            if rule_id not in rules:
                problems.append(
                    Problem(f"cannot disable unknown rule {rule_id!r}{did_you_mean(rule_id, rules)}",
                            origin.file, origin.line, rule_id, "disable")
                )
                continue
            if rules[rule_id].safety:
                if not allow_safety_overrides:
                    problems.append(
                        Problem(
                            f"rule {rule_id!r} is a safety rule: disabling it needs "
                            "Recommender(..., allow_safety_overrides=True)",
                            origin.file, origin.line, rule_id, "disable",
                        )
                    )
                    continue
                overrides.append(f"safety rule {rule_id!r} disabled by {origin}")
            del rules[rule_id]
            disabled.append(rule_id)
    urgency: dict[str, str] = {}
    for pack in raw_packs:
        urgency.update(pack.urgency)
    examples = tuple(e for p in raw_packs for e in p.examples)
    return Rulebase(
        fields=fields,
        techniques=dict(sorted(techniques.items())),
        sources=dict(sorted(sources.items())),
        rules=tuple(sorted(rules.values(), key=lambda r: r.id)),
        red_flags=dict(sorted(red_flags.items())),
        contraindications=dict(sorted(contras.items())),
        urgency_actions=urgency,
        examples=examples,
        safety_overrides=tuple(sorted(overrides)),
        disabled=tuple(sorted(disabled)),
    )


def _red_flag_rule(flag: RedFlag) -> Rule:
    return Rule(
        id=f"red-flag.{flag.id}",
        title=f"Red flag: {flag.description}",
        when=(Condition("red_flags", (Test("contains", flag.id),)),),
        then=Conclusion(refer=Refer(flag.urgency, flag.suspected)),
        because=f"{flag.description} can be a sign of {flag.suspected}; "
        f"it needs {flag.urgency} assessment by a clinician, not massage.",
        source=flag.source,
        evidence="guideline",
        safety=True,
        origin=flag.origin,
    )


def _contraindication_rule(c: Contraindication) -> Rule:
    warn = {
        "avoid_area": f"keep massage away from the affected area ({c.description.lower()})",
        "consult_first": f"ask the treating clinician before massage ({c.description.lower()})",
    }.get(c.effect)
    return Rule(
        id=f"contraindication.{c.id}",
        title=f"Contraindication: {c.description}",
        when=(Condition("conditions", (Test("contains", c.id),)),),
        then=Conclusion(exclude=c.exclude, refer=c.refer, warn=warn),
        because=c.because,
        source=c.source,
        evidence="low",
        safety=True,
        origin=c.origin,
    )


def _fact_types(rb: Rulebase) -> dict[str, set[str]]:
    """The value types each fact can have: declared for fields, seen for derived facts."""
    types: dict[str, set[str]] = {}
    for name, spec in rb.fields.items():
        types[name] = {"number" if spec.type in ("int", "number") else spec.type}
    for rule in rb.rules:
        for fact, value in rule.then.derive:
            types.setdefault(fact, set()).add(_value_type(value))
    return types


def _value_type(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return "string"


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
            elif len(types[fact]) > 1:
                # True == 1 in both Python and the engine: one type per fact keeps matches exact.
                problem(rule, f"fact {fact!r} is given or derived as {' and '.join(sorted(types[fact]))} "
                        f"values; derive it as {_value_type(value)} everywhere", "then.derive")
        for flag in rule.then.flag:
            if flag not in rb.red_flags:
                problem(rule, f"unknown red flag {flag!r}{did_you_mean(flag, rb.red_flags)}", "then.flag")
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
    spec = rb.fields.get(cond.fact)
    for test in cond.tests:
        if "list" in types:
            if test.op != "contains":
                out.append(Problem(f"{cond.fact!r} is a list: test it with contains = \"id\"", o.file, o.line,
                                   rule.id, key))
                continue
            if not isinstance(test.value, str):
                # durable-rules compares a string with a number through uninitialised memory.
                out.append(Problem(f"{cond.fact!r} holds strings: contains needs a string id, got {test.value!r}",
                                   o.file, o.line, rule.id, key))
                continue
            catalogues: dict[str, Mapping[str, Any]] = {"red_flags": rb.red_flags,
                                                       "conditions": rb.contraindications}
            catalogue = catalogues.get(cond.fact)
            allowed: Iterable[str] | None = catalogue if catalogue is not None else (spec.choices if spec and spec.choices else None)
            if allowed is not None and test.value not in allowed:
                out.append(Problem(f"{cond.fact!r} has no id {test.value!r}{did_you_mean(str(test.value), allowed)}",
                                   o.file, o.line, rule.id, key))
            continue
        if test.op == "contains":
            out.append(Problem(f"contains applies only to list fields; {cond.fact!r} is not one", o.file, o.line,
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
        outs = [f for f, _ in rule.then.derive] + (["red_flags"] if rule.then.flag else [])
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


def _check_examples(rb: Rulebase) -> list[Problem]:
    """Examples must name things that exist, so a typo fails on load, not silently."""
    out: list[Problem] = []
    for ex in rb.examples:
        o = ex.origin or Origin("<rules>")
        e = ex.expect
        for tech in (*((e.first,) if e.first else ()), *e.order, *e.in_top, *e.absent, *e.excluded):
            if tech not in rb.techniques:
                out.append(Problem(f"example {ex.name!r}: unknown technique {tech!r}"
                                   f"{did_you_mean(tech, rb.techniques)}", o.file, o.line, key="expect"))
        for rid in (*e.fired, *e.not_fired):
            if rid not in rb.by_id and rid not in rb.disabled:
                out.append(Problem(f"example {ex.name!r}: unknown rule {rid!r}{did_you_mean(rid, rb.by_id)}",
                                   o.file, o.line, key="expect"))
    return out
