"""JSON Schemas for profiles and results, derived from the code's own definitions.

The profile schema is read from the :class:`FieldSpec` objects the validator
uses; the result schema from the attrs classes and type hints that
:meth:`Recommendation.to_dict` walks. Neither is kept by hand, so neither can
drift from what the code accepts and produces.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union

import attrs

from ._profile import MAX_ITEMS, MAX_TEXT, FieldSpec
from ._result import Recommendation

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
