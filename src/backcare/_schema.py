"""JSON Schemas for profiles, results and rule files, derived from the code's own definitions.

The profile schema is read from the :class:`FieldSpec` objects the validator
uses; the result schema from the attrs classes and type hints that
:meth:`Recommendation.to_dict` walks; the rule-file schema from the loader's
key table (``_loader.keys``). None is kept by hand, so none can drift from
what the code accepts and produces.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union

import attrs

from ._loader.keys import ID_RE, NAME_RE, SCHEMA, TOP_LEVEL_KEYS, Key
from ._loader.limits import MAX_WEIGHT
from ._model import OPERATORS
from ._profile import MAX_ITEMS, MAX_TEXT, FieldSpec
from ._result import Recommendation
from ._text import CONTROL_RE

DIALECT = "https://json-schema.org/draft/2020-12/schema"


def field_schema(spec: FieldSpec) -> dict[str, Any]:
    """The JSON Schema of one profile field's non-null values."""
    out: dict[str, Any] = {"description": spec.description}
    if spec.type == "bool":
        out["type"] = "boolean"
    elif spec.type in ("int", "number"):
        out["type"] = "integer" if spec.type == "int" else "number"
        if spec.minimum is not None:
            out["minimum"] = spec.minimum
        if spec.maximum is not None:
            out["maximum"] = spec.maximum
    elif spec.type == "string":
        out["type"] = "string"
        if spec.choices:
            out["enum"] = list(spec.choices)
        else:
            out["maxLength"] = MAX_TEXT
    else:
        item: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": MAX_TEXT}
        if spec.choices:
            item = {"enum": list(spec.choices)}
        out.update(type="array", items=item, maxItems=MAX_ITEMS)
    if spec.default is not None:
        out["default"] = spec.default
    return out


def profile_schema(fields: Mapping[str, FieldSpec]) -> dict[str, Any]:
    """A schema accepting exactly the profiles a recommender with ``fields`` accepts."""
    return {
        "$schema": DIALECT,
        "title": "backcare profile",
        "description": "A back-pain symptom profile. Every field is optional; null means not given.",
        "type": "object",
        "properties": {
            name: {"anyOf": [field_schema(spec), {"type": "null"}]} for name, spec in sorted(fields.items())
        },
        "additionalProperties": False,
        "dependentRequired": {
            name: list(spec.requires) for name, spec in sorted(fields.items()) if spec.requires
        },
    }


def result_schema() -> dict[str, Any]:
    """The schema of :meth:`Recommendation.to_dict`, from the result classes' type hints."""
    defs: dict[str, Any] = {}
    _type_schema(Recommendation, defs)
    top = defs.pop(Recommendation.__name__)
    return {"$schema": DIALECT, "title": "backcare recommendation", **top, "$defs": defs}


def _type_schema(tp: Any, defs: dict[str, Any]) -> dict[str, Any]:
    if attrs.has(tp):
        name = tp.__name__
        if name not in defs:
            defs[name] = {}  # placeholder against recursion
            hints = typing.get_type_hints(tp)
            fields = [f for f in attrs.fields(tp) if not f.metadata.get("internal")]
            defs[name] = {
                "type": "object",
                "description": (tp.__doc__ or "").strip().split("\n")[0],
                "properties": {f.name: _type_schema(hints[f.name], defs) for f in fields},
                "required": [f.name for f in fields],
                "additionalProperties": False,
            }
        return {"$ref": f"#/$defs/{name}"}
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return {}
    if tp is type(None):
        return {"type": "null"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if tp is str:
        return {"type": "string"}
    if origin is Literal:
        return {"enum": list(args)}
    if origin in (Union, types.UnionType):
        return {"anyOf": [_type_schema(a, defs) for a in args]}
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": _type_schema(args[0], defs)}
        return {"type": "array", "prefixItems": [_type_schema(a, defs) for a in args], "items": False}
    if origin in (dict, Mapping, typing.Mapping) or (origin is not None and issubclass(origin, Mapping)):
        return {"type": "object", "additionalProperties": _type_schema(args[1], defs) if args else {}}
    raise TypeError(f"no JSON Schema for type {tp!r}")


def pack_schema() -> dict[str, Any]:
    """The schema of a rule file (TOML, read as JSON-like data), for editors such as taplo.

    It checks shapes, names and allowed values; cross-references (does a
    rule's technique exist?) need the loader: ``backcare rules check``.
    """
    tables = {
        name: ({"type": "object", **_table(keys)} if name in ("pack", "urgency")
               else {"type": "array", "items": {"type": "object", **_table(keys)}})
        for name, keys in SCHEMA.items()
    }
    return {
        "$schema": DIALECT,
        "title": "backcare rule file",
        "description": "A backcare rule pack file (TOML). Information, not medical advice.",
        "type": "object",
        "properties": {**tables, **{k.name: _key_schema(k) for k in TOP_LEVEL_KEYS.values()}},
        "additionalProperties": False,
    }


def _table(keys: Mapping[str, Key]) -> dict[str, Any]:
    return {
        "properties": {k.name: _key_schema(k) for k in keys.values()},
        "required": [k.name for k in keys.values() if k.required],
        "additionalProperties": False,
    }


_TEXT: dict[str, Any] = {"type": "string", "pattern": r"\S", "not": {"pattern": CONTROL_RE.pattern}}
#: Text shown as a heading or a name: on one line.
_LINE: dict[str, Any] = {"type": "string", "pattern": r"\S",
                         "not": {"anyOf": [{"pattern": CONTROL_RE.pattern}, {"pattern": "[\n\r\t]"}]}}
_SCALAR: dict[str, Any] = {"type": ["string", "number", "boolean"]}


def _key_schema(key: Key) -> dict[str, Any]:
    """One key's value, from its declared type, choices and nested keys."""
    ident = {"type": "string", "pattern": ID_RE.pattern}
    name = {"type": "string", "pattern": NAME_RE.pattern}
    by_values: dict[str, dict[str, Any]] = {
        "condition": {"type": "object", "minProperties": 1,
                      "additionalProperties": {"anyOf": [_SCALAR, _condition()]}},
        "weight": {"type": "object", "minProperties": 1,
                   "additionalProperties": {"type": "number", "minimum": -MAX_WEIGHT, "maximum": MAX_WEIGHT}},
        "scalar": {"type": "object", "additionalProperties": _SCALAR},
        "any": {"type": "object"},
    }
    if key.type == "string or table":  # then.derive
        schema: dict[str, Any] = {"anyOf": [name, {**by_values[key.values], "minProperties": 1,
                                                   "propertyNames": {"pattern": NAME_RE.pattern}}]}
    elif key.type == "id or list of ids":
        schema = {"anyOf": [ident, {"type": "array", "items": ident}]}
    elif key.type == "table" and key.keys:
        schema = {"type": "object", **_table({k.name: k for k in key.keys})}
    elif key.type == "table":
        schema = dict(by_values[key.values])
    else:
        schema = {
            "string": {**_TEXT, "enum": list(key.choices)} if key.choices else dict(_TEXT),
            "line": dict(_LINE),
            "id": ident,
            "name": name,
            "bool": {"type": "boolean"},
            "int": {"type": "integer"},
            "number": {"type": "number"},
            "list of strings": {"type": "array", "items": {**_TEXT}},
            "list of ids": {"type": "array", "items": ident},
        }[key.type]
    return {"description": key.doc.replace("`", ""), **schema}


def _condition() -> dict[str, Any]:
    """A condition's table of tests: ``{ ge = 4, le = 12 }``."""
    tests: dict[str, Any] = {op: _SCALAR for op in OPERATORS}
    tests["in"] = {"type": "array", "minItems": 1, "items": _SCALAR}
    for op in ("gt", "ge", "lt", "le"):
        tests[op] = {"type": "number"}
    return {"type": "object", "minProperties": 1, "properties": tests, "additionalProperties": False}
