"""``Recommendation.to_json()`` without the round trip through dicts and the pure-Python encoder.

The canonical text of a result is ``json.dumps(result.to_dict(), sort_keys=True,
ensure_ascii=False, indent=2, allow_nan=False)``. With ``indent`` set, the
standard library encodes in Python, one generator per container, after
``to_dict()`` has copied the whole result into dicts and lists: about 0.8 ms
for a typical 16 kB result, five times the cost of evaluating it. Here the
same text is written straight from the result's attrs values, and the text
of each part other results may share is kept for reuse (bounded): results
share their steps (see ``_reasoning``), which are most of the text, and a
result instantiated from another with the same signature shares all it did
not change (see ``_signature``). The output is the same byte for byte (the
tests compare it with the ``json.dumps`` form).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import attrs

from ._result import DerivedFact, Exclusion, NotRecommended, Provenance, RankedTechnique, Referral, Step

#: Parts of results that other results share: steps (results share them), and, in a result
#: instantiated from another of the same signature, everything that did not change.
_SHARED = frozenset({Step, RankedTechnique, NotRecommended, Exclusion, Referral, DerivedFact, Provenance})

_encode_str = getattr(json.encoder, "c_encode_basestring", None) or json.encoder.py_encode_basestring
_INDENT = tuple("\n" + "  " * level for level in range(64))

#: Per attrs class, the names of its serialised attributes, sorted (as ``sort_keys`` orders them).
_NAMES: dict[type, tuple[str, ...]] = {}
#: (id(part), depth) -> (part, its text at that depth); the part is held so its id stays unique.
_TEXTS: dict[tuple[int, int], tuple[Any, str]] = {}
#: Bounds on that memo, in entries and in characters held; past either it starts again.
MAX_TEXTS = 8192
MAX_CHARS = 4_000_000
_held = [0]


def _names(cls: type) -> tuple[str, ...]:
    found = _NAMES.get(cls)
    if found is None:
        found = _NAMES[cls] = tuple(sorted(a.name for a in attrs.fields(cls) if not a.metadata.get("internal")))
    return found


def dumps(value: Any) -> str:
    """``value`` (a result, or any part of one) as its canonical JSON text."""
    out: list[str] = []
    _write(value, 0, out)
    return "".join(out)


def _indent(level: int) -> str:
    return _INDENT[level] if level < len(_INDENT) else "\n" + "  " * level


def _write(value: Any, level: int, out: list[str]) -> None:
    kind = type(value)
    if kind is str:
        out.append(_encode_str(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif kind is int:
        out.append(int.__repr__(value))
    elif kind is float:
        out.append(_float(value))
    elif kind is tuple or kind is list:
        _sequence(value, level, out)
    elif kind in _SHARED:
        key = (id(value), level)
        found = _TEXTS.get(key)
        if found is None:
            part: list[str] = []
            _object(value, level, part)
            text = "".join(part)
            if len(_TEXTS) >= MAX_TEXTS or _held[0] + len(text) > MAX_CHARS:
                _TEXTS.clear()
                _held[0] = 0
            found = _TEXTS[key] = (value, text)
            _held[0] += len(text)
        out.append(found[1])
    elif attrs.has(kind):
        _object(value, level, out)
    elif isinstance(value, Mapping):
        items = sorted((str(k), v) for k, v in value.items())
        _pairs(items, level, out)
    elif isinstance(value, str):
        out.append(_encode_str(value))
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        out.append(_float(value))
    elif isinstance(value, (list, tuple)):
        _sequence(value, level, out)
    else:
        raise TypeError(f"Object of type {kind.__name__} is not JSON serializable")


def _float(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError("Out of range float values are not JSON compliant: " + repr(value))
    return float.__repr__(value)


def _sequence(value: Any, level: int, out: list[str]) -> None:
    if not value:
        out.append("[]")
        return
    inner = _indent(level + 1)
    out.append("[")
    first = True
    for item in value:
        out.append(inner if first else "," + inner)
        first = False
        _write(item, level + 1, out)
    out.append(_indent(level) + "]")


def _object(value: Any, level: int, out: list[str]) -> None:
    _pairs([(name, getattr(value, name)) for name in _names(type(value))], level, out)


def _pairs(items: list[tuple[str, Any]], level: int, out: list[str]) -> None:
    if not items:
        out.append("{}")
        return
    inner = _indent(level + 1)
    out.append("{")
    first = True
    for key, item in items:
        out.append((inner if first else "," + inner) + _encode_str(key) + ": ")
        first = False
        _write(item, level + 1, out)
    out.append(_indent(level) + "}")


__all__ = ["dumps"]
