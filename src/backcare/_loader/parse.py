"""Parsing one file into raw entries, checking each value's shape against :data:`SCHEMA`."""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from .._engine import representable  # the engine owns how values compile
from .._errors import Problem, did_you_mean
from .._model import (
    INPUT_OPERATORS,
    OPERATORS,
    URGENCIES,
    Conclusion,
    Condition,
    Contraindication,
    Example,
    Exclude,
    Expectation,
    FactInfo,
    Origin,
    RedFlag,
    Refer,
    Rule,
    Source,
    Technique,
    Test,
)
from .._profile import FieldSpec
from .._text import CONTROL_RE, quote
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
from .limits import MAX_NESTING, MAX_NUMBER_DIGITS, MAX_WEIGHT
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
        kind = self.table.split(".")[0]  # [urgency.emergency] is an urgency
        self.problems.append(Problem(message, self.file, self.line(key), self.rule_id, key, kind=kind))

    def origin(self, keys: Iterable[str] = ()) -> Origin:
        lines = tuple((k, line) for k in keys if (line := self.line(k)) is not None)
        return Origin(self.file, self.line(), self.pack, lines)


def _check_keys(ctx: _Ctx, data: Mapping[str, Any], schema: Mapping[str, Key], prefix: str = "") -> None:
    for key in data:
        if key not in schema:
            if not prefix and key in TOP_LEVEL - set(SCHEMA):
                # TOML puts every key after a [table] header into that table.
                header = f"[{ctx.table}]" if ctx.table in ("pack", "urgency") else f"[[{ctx.table}]]"
                ctx.problem(f"{quote(key)} is a top-level key, but TOML reads it as part of the {header} above it: "
                            "top-level keys go before the first table", key)
                continue
            ctx.problem(
                f"unknown key {quote(key)}{did_you_mean(key, schema)}; expected one of {', '.join(schema)}",
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
        ctx.problem(f"{key!r} must be {expected}, got {quote(value)}", key)
        return default
    return value


def _choice(ctx: _Ctx, data: Mapping[str, Any], spec: Key, key: str | None = None) -> Any:
    """Fetch a string key whose values are ``spec.choices``; ``key`` names it in problems if nested."""
    value = _get(ctx, data, spec.name, "string")
    if value is not None and value not in spec.choices:
        ctx.problem(
            f"{spec.name!r} must be one of {', '.join(spec.choices)}, got {quote(value)}"
            f"{did_you_mean(value, spec.choices)}", key or spec.name
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
    facts: list[tuple[FactInfo, bool]] = attrs.Factory(list)
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
    #: Entries that had problems, as (kind, id), and the facts each would have
    #: given (a field's name, what a rule derives): a later "unknown ..." about
    #: one of them is a knock-on of that first problem, not a mistake of its own.
    broken: dict[tuple[str, str], None] = attrs.Factory(dict)
    broken_facts: dict[str, tuple[str, str]] = attrs.Factory(dict)


# ---------------------------------------------------------------------------
# Before the TOML parser: its cost grows with the square of a dotted key's
# length and it recurses once per level of arrays and inline tables, so depth
# and number size are bounded on the raw text first.

_TOKEN = re.compile(
    "(?P<skip>"
    r'"""(?:[^\\"]|\\[\s\S]|"(?!""))*"{3,5}'  # multi-line basic string
    r"|'''[\s\S]*?'{3,5}"  # multi-line literal string
    r'|"(?:[^"\\\n]|\\.)*"'  # basic string
    r"|'[^'\n]*'"  # literal string
    r"|#[^\n]*"  # comment
    ")"
    rf"|(?P<digits>[0-9][0-9_]{{{MAX_NUMBER_DIGITS},}})"
    r"|(?P<punct>[\[\]{}=,.\n])"
)


def _prescan(text: str) -> tuple[str, int] | None:
    """The first reason not to hand ``text`` to the TOML parser, with its line, or None.

    Nesting counts every level the parsed data will have: each part of a
    dotted key or table header, each array and each inline table (an
    overestimate by one or two at most). Strings and comments are skipped,
    so dots and brackets in text never count.
    """
    stack: list[int] = []  # the nesting depth at each open bracket of a value
    header = 0  # the depth the current [table] header puts its keys at
    dots = 0  # dots in the key being read
    key_depth = 0  # dots of the key whose value is being read
    in_value = False  # after a top-level '=', until the end of its line
    header_open = 0  # brackets open in a [table] header being read
    line = 1
    too_deep = f"nested more than {MAX_NESTING} levels deep (tables, arrays and dotted keys together)"
    for m in _TOKEN.finditer(text):
        kind, token = m.lastgroup, m.group()
        if kind == "skip":
            line += token.count("\n")
            continue
        if kind == "digits":
            return (f"a number of {len(token.replace('_', ''))} digits: numbers in rule files have at most "
                    f"{MAX_NUMBER_DIGITS}", line)
        if token == "\n":
            line += 1
            if header_open:  # an unclosed header: the parser says so
                header_open = dots = 0
            if not stack:
                dots = key_depth = 0
                in_value = False
            continue
        if header_open:
            if token == "[":
                header_open += 1
            elif token == "]":
                header_open -= 1
                if not header_open:
                    header, dots = dots + 2, 0
            elif token == ".":
                dots += 1
                if dots + 2 > MAX_NESTING:
                    return too_deep, line
            continue
        base = stack[-1] if stack else header
        if token == "[" and not stack and not in_value:
            header_open, dots = 1, 0
        elif token == ".":
            dots += 1
            if base + key_depth + dots + 1 > MAX_NESTING:
                return too_deep, line
        elif token in "[{":
            depth = base + key_depth + dots + 1
            if depth > MAX_NESTING:
                return too_deep, line
            stack.append(depth)
            dots = key_depth = 0
        elif token in "]}":
            if stack:
                stack.pop()
            dots = key_depth = 0
        elif token == "=":
            key_depth, dots = dots, 0
            in_value = in_value or not stack
        else:  # ","
            dots = key_depth = 0
    return None


#: Hints for the TOML slips rule authors make most, keyed by a pattern on the
#: parser's message and the text where it stopped.
_TOML_HINTS: tuple[tuple[str, str, str], ...] = (
    ("Invalid value", r"(True|False|TRUE|FALSE|Yes|No|yes|no)\b", "TOML writes booleans in lower case: true or false"),
    ("Invalid value", r"(None|null|nil|NULL)\b", "TOML has no null: leave the key out instead"),
    ("Invalid value", r"[A-Za-z_]", "text needs quotes: key = \"text\""),
    ("Cannot overwrite a value", "", "a key is given twice in one table"),
    ("Cannot declare", "", "a [table] is declared twice: write [[table]] for each entry of a list of tables"),
    ("Illegal character '\\n'", "", "a string is not closed on this line; write \"\"\"...\"\"\" for text over several lines"),
    ("Invalid initial character for a key part", "",
     "an inline table { ... } must fit on one line: use a [table] section or put it on one line"),
    ("Expected newline or end of document after a statement", "", "write one key = value per line"),
    ("Unclosed inline table", "", "an inline table { ... } must fit on one line"),
)


def _toml_hint(message: str, text: str, line: int | None, column: int | None) -> str:
    """A hint for a TOML syntax error, from its message and the text where the parser stopped."""
    here = ""
    if line is not None and column is not None:
        lines = text.splitlines()
        if 0 < line <= len(lines):
            here = lines[line - 1][column - 1:]
    for needle, pattern, hint in _TOML_HINTS:
        if needle in message and (not pattern or re.match(pattern, here)):
            return f" (hint: {hint})"
    return ""


def _control_characters(ctx: _Ctx, value: Any, path: str) -> None:
    """Report every string (key or value) in ``value`` holding a control character."""
    if isinstance(value, str):
        found = CONTROL_RE.search(value)
        if found:
            ctx.problem(f"text holds the control character U+{ord(found.group()):04X}: only newline and tab are "
                        "allowed (a terminal would act on the others)", path or None)
    elif isinstance(value, dict):
        for k, v in value.items():
            _control_characters(ctx, k, path)
            _control_characters(ctx, v, f"{path}.{k}" if path else k)
    elif isinstance(value, list):
        for item in value:
            _control_characters(ctx, item, path)


def _parse_text(text: str, shown: str, pack: _RawPack, problems: list[Problem]) -> None:
    found = _prescan(text)
    if found:
        problems.append(Problem(f"not read: {found[0]}", shown, found[1], kind="input"))
        return
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+), column (\d+)", str(exc))
        line, column = (int(m.group(1)), int(m.group(2))) if m else (None, None)
        hint = _toml_hint(str(exc), text, line, column)
        problems.append(Problem(f"not valid TOML: {exc}{hint}", shown, line, kind="file"))
        return
    except (ValueError, RecursionError) as exc:  # pragma: no cover - the prescan refuses what causes these
        problems.append(Problem(f"not read: {exc}", shown, kind="input"))
        return
    locator = _Locator(text)
    for key in data:
        if key not in TOP_LEVEL:
            problems.append(
                Problem(
                    f"unknown top-level key {quote(key)}{did_you_mean(key, TOP_LEVEL)}; "
                    f"expected one of {', '.join(sorted(TOP_LEVEL))}",
                    shown,
                    locator.top_level(key) or locator.entry(key, 0),
                    key=key,
                )
            )
    for table, value in data.items():
        if table == "disable":
            if isinstance(value, list) and any(isinstance(d, str) and CONTROL_RE.search(d) for d in value):
                problems.append(Problem("a rule id holds a control character", shown, locator.top_level("disable"),
                                        key="disable"))
        elif table == "urgency" and isinstance(value, dict):
            for level, entry in value.items():  # each [urgency.<level>] locates its own keys
                _control_characters(_Ctx(problems, shown, locator, f"urgency.{level}", 0),
                                    entry if isinstance(entry, dict) else {level: entry}, "")
        elif table == "pack":
            _control_characters(_Ctx(problems, shown, locator, table, 0), value, "")
        elif table in SCHEMA and isinstance(value, list):
            for index, entry in enumerate(value):
                ident = entry.get("id", entry.get("name")) if isinstance(entry, dict) else None
                ctx = _Ctx(problems, shown, locator, table, index, ident if isinstance(ident, str) else None)
                _control_characters(ctx, entry, "")
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
            continue
        ctx = _Ctx(problems, shown, locator, f"urgency.{level}", 0)
        if not isinstance(entry, dict):
            ctx.problem(f"[urgency.{level}] must be a table with action = \"...\"", None)
            continue
        _check_keys(ctx, entry, URGENCY_KEYS)
        action = _get(ctx, entry, "action", "string")
        limit = _choice(ctx, entry, URGENCY_KEYS["max_pressure"])
        if limit is not None and level != "routine":
            ctx.problem(f"max_pressure applies only to [urgency.routine]: a {level} referral withholds every "
                        "technique", "max_pressure")
        elif action is not None:
            pack.urgency[level] = (action, limit, attrs.evolve(ctx.origin(entry), pack=pack.name))
    disable = data.get("disable", [])
    line = locator.top_level("disable")
    if not (isinstance(disable, list) and all(isinstance(d, str) for d in disable)):
        problems.append(Problem("'disable' must be a list of rule ids", shown, line, key="disable"))
    else:
        origin = Origin(shown, line)
        pack.disable += [(d, origin) for d in disable]

    parsers: dict[str, Callable[[_Ctx, dict[str, Any], _RawPack], None]] = {
        "field": _parse_field,
        "fact": _parse_fact,
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
            problems.append(Problem(f"'{table}' must be an array of tables: write [[{table}]]", shown,
                                    locator.entry(table, 0), key=table))
            continue
        for index, entry in enumerate(entries):
            ctx = _Ctx(problems, shown, locator, table, index, pack=pack.name)
            if not isinstance(entry, dict):
                ctx.problem(f"each [[{table}]] must be a table")
                continue
            ident = entry.get("id", entry.get("name"))
            ctx.rule_id = ident if isinstance(ident, str) else None
            before = len(problems)
            _check_keys(ctx, entry, SCHEMA[table])
            parse(ctx, entry, pack)
            if len(problems) > before and ctx.rule_id is not None:
                _note_broken(pack, table, ctx.rule_id, entry)


def _note_broken(pack: _RawPack, table: str, ident: str, entry: Mapping[str, Any]) -> None:
    """Remember an entry that had problems, and the facts it would have given."""
    pack.broken[(table, ident)] = None
    if table == "field":
        pack.broken_facts.setdefault(ident, (table, ident))
    elif table == "rule":
        then = entry.get("then")
        derive = then.get("derive") if isinstance(then, dict) else None
        names = [derive] if isinstance(derive, str) else list(derive) if isinstance(derive, dict) else []
        for name in names:
            if isinstance(name, str):
                pack.broken_facts.setdefault(name, (table, ident))


def _parse_pack_table(ctx: _Ctx, d: dict[str, Any], pack: _RawPack) -> None:
    """The [pack] table: what the pack calls itself, for provenance, and the ranking it asks for."""
    values = {k: _get(ctx, d, k, "string") for k in ("name", "version", "description")}
    values["ranking"] = _choice(ctx, d, SCHEMA["pack"]["ranking"])
    for key, value in values.items():
        if value is None:
            continue
        if key in pack.meta and pack.meta[key] != value:
            ctx.problem(f"[pack] {key} is {quote(pack.meta[key])} in another file of this pack; a pack has one "
                        f"{key}", key)
            continue
        pack.meta[key] = value
    if pack.meta_origin is None:
        pack.meta_origin = ctx.origin()


def _parse_field(ctx: _Ctx, d: dict[str, Any], pack: _RawPack) -> None:
    name = _get(ctx, d, "name", "name")
    ftype = _choice(ctx, d, SCHEMA["field"]["type"])
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


def _parse_fact(ctx: _Ctx, d: dict[str, Any], pack: _RawPack) -> None:
    name = _get(ctx, d, "name", "name")
    label = _get(ctx, d, "label", "string")
    desc = _get(ctx, d, "description", "string")
    replace = _get(ctx, d, "replace", "bool", False)
    if name and label and desc:
        pack.facts.append((FactInfo(name, label, desc, ctx.origin(d)), replace))


def _parse_technique(ctx: _Ctx, d: dict[str, Any], pack: _RawPack) -> None:
    tid, name, desc = (_get(ctx, d, k, t) for k, t in (("id", "id"), ("name", "string"), ("description", "string")))
    pressure = _choice(ctx, d, SCHEMA["technique"]["pressure"])
    replace = _get(ctx, d, "replace", "bool", False)
    if tid and name and desc and pressure:
        pack.techniques.append((Technique(tid, name, desc, pressure, ctx.origin(d)), replace))


def _parse_source(ctx: _Ctx, d: dict[str, Any], pack: _RawPack) -> None:
    sid = _get(ctx, d, "id", "id")
    kind = _choice(ctx, d, SCHEMA["source"]["kind"])
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
        ctx.problem(f"condition on {quote(fact)} has no test", key)
        return None
    tests = []
    for op, value in raw.items():
        if op not in OPERATORS:
            hint = f" (did you mean {_OPERATOR_HINTS[op]!r}?)" if op in _OPERATOR_HINTS else did_you_mean(op, OPERATORS)
            ctx.problem(
                f"unknown operator {quote(op)}{hint} in condition on {quote(fact)}; "
                f"expected one of {', '.join(OPERATORS)}",
                key,
            )
            continue
        if op == "in":
            if not (isinstance(value, list) and value and all(_is_scalar(v) for v in value)):
                ctx.problem(f"'in' on {quote(fact)} needs a non-empty list of values{_NUMBER_LIMITS}", key)
                continue
            value = tuple(value)
        elif not _is_scalar(value):
            ctx.problem(f"{quote(op)} on {quote(fact)} needs a string, number or boolean{_NUMBER_LIMITS}, "
                        f"got {quote(value)}", key)
            continue
        elif op in ("gt", "ge", "lt", "le") and (isinstance(value, bool) or not isinstance(value, (int, float))):
            ctx.problem(f"{quote(op)} on {quote(fact)} compares numbers, got {quote(value)}", key)
            continue
        elif op == "lacks" and not isinstance(value, str):
            ctx.problem(f"'lacks' on {quote(fact)} needs the id a list must not include, got {quote(value)}", key)
            continue
        elif op == "given" and not isinstance(value, bool):
            ctx.problem(f"'given' on {quote(fact)} takes true or false, got {quote(value)}", key)
            continue
        tests.append(Test(op, value))
    inputs = [t.op for t in tests if t.op in INPUT_OPERATORS]
    if inputs and len(raw) > 1:
        ctx.problem(f"{inputs[0]!r} tests the profile as given and must be the only test in its condition on "
                    f"{quote(fact)}", key)
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
    evidence = _choice(ctx, d, SCHEMA["rule"]["evidence"])
    caveat = _get(ctx, d, "caveat", "string")
    caveat_source = _get(ctx, d, "caveat_source", "id")
    safety = _get(ctx, d, "safety", "bool", False)
    untested = _get(ctx, d, "untested", "bool", False)
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
                 evidence or "claim", caveat, caveat_source, safety, ctx.origin(d), untested),
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
                    ctx.problem(f"derived fact name {quote(fact)} must be lower_snake_case", "then.derive")
                elif not _is_scalar(v):
                    ctx.problem(f"derived fact {quote(fact)} needs a string, number or boolean value{_NUMBER_LIMITS}", "then.derive")
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
                    ctx.problem(f"weight for {quote(tech)} must be a finite number, got {quote(w)}", "then.score")
                elif abs(w) > MAX_WEIGHT:
                    ctx.problem(f"weight for {quote(tech)} is {w:g}: weights are from -{MAX_WEIGHT} to {MAX_WEIGHT}",
                                "then.score")
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
            urgency = _choice(ctx, raw["refer"], REFER_KEYS["urgency"])
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
    max_pressure = _choice(ctx, raw, EXCLUDE_KEYS["max_pressure"])
    all_ = _get(ctx, raw, "all", "bool", False)
    if not (techniques or only is not None or max_pressure or all_):
        ctx.problem(f"{key} rules out nothing: give techniques, max_pressure, only or all = true", key)
        return None
    return Exclude(tuple(sorted(set(techniques))), max_pressure, tuple(sorted(set(only))) if only is not None else None, all_)


def _parse_red_flag(ctx: _Ctx, d: dict[str, Any], pack: _RawPack) -> None:
    fid = _get(ctx, d, "id", "id")
    desc = _get(ctx, d, "description", "string")
    suspected = _get(ctx, d, "suspected", "string")
    urgency = _choice(ctx, d, SCHEMA["red_flag"]["urgency"])
    source = _get(ctx, d, "source", "id")
    replace = _get(ctx, d, "replace", "bool", False)
    if fid and desc and suspected and urgency and source:
        pack.red_flags.append((RedFlag(fid, desc, suspected, urgency, source, ctx.origin()), replace))


def _parse_contraindication(ctx: _Ctx, d: dict[str, Any], pack: _RawPack) -> None:
    cid = _get(ctx, d, "id", "id")
    desc = _get(ctx, d, "description", "string")
    effect = _choice(ctx, d, SCHEMA["contraindication"]["effect"])
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
    urgency = _choice(ctx, d, SCHEMA["contraindication"]["refer"])
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
            value = _choice(ctx, expect_raw, spec)
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
        pack.examples.append(Example(name, tuple(sorted(profile.items())), Expectation(**kw),
                                     ctx.origin(("profile", "expect"))))

