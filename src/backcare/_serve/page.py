"""The intake page: a form built from the profile's field specs, and the result beside it.

Every input comes from a :class:`~backcare.FieldSpec` of the recommender in
use, so fields a rule pack declares, and new core fields, appear without an
edit here; list fields backed by a catalogue (red flags, conditions) show each
entry's description in words. Submitted text is turned into values only as
far as the form's own encoding demands (a number box sends digits as text);
everything else, including every error message, is the library's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import jinja2

from .._errors import ProfileError
from .._model import EVIDENCE_MEANING, Rulebase
from .._profile import MAX_ITEMS, MAX_TEXT, FieldSpec
from .._recommender import Recommender
from .._result import Recommendation

_INT = re.compile(r"^[+-]?\d+$")

#: What a yes / no / not-asked radio group sends.
YES, NO = "yes", "no"


@attrs.frozen
class Choice:
    value: str
    label: str
    group: str | None = None


@attrs.frozen
class Field:
    """One form control, described for the template."""

    name: str
    spec: FieldSpec
    label: str
    widget: str  # "tristate", "number", "select", "text", "checkboxes", "lines"
    choices: tuple[Choice, ...] = ()
    hint: str = ""


def form_fields(rec: Recommender) -> list[Field]:
    """The form's controls, in the recommender's field order."""
    rb = rec.rulebase
    out = []
    for name, spec in rec.fields.items():
        label = spec.description
        hint = _hint(spec)
        if spec.type == "bool":
            out.append(Field(name, spec, label, "tristate", hint=hint))
        elif spec.type in ("int", "number"):
            out.append(Field(name, spec, label, "number", hint=hint))
        elif spec.type == "string" and spec.choices:
            out.append(Field(name, spec, label, "select", tuple(Choice(c, _words(c)) for c in spec.choices), hint))
        elif spec.type == "string":
            out.append(Field(name, spec, label, "text", hint=hint))
        elif spec.choices:
            out.append(Field(name, spec, label, "checkboxes", _catalogue_choices(spec, rb), hint))
        else:
            out.append(Field(name, spec, label, "lines", hint=hint))
    return out


def _hint(spec: FieldSpec) -> str:
    if spec.type in ("int", "number"):
        return f"Enter {spec.expected()}, or leave empty if not asked."
    if spec.type == "list" and not spec.choices:
        return f"One per line, at most {MAX_ITEMS}, each at most {MAX_TEXT} characters."
    if spec.type == "list":
        return "Tick every one that applies."
    return ""


def _words(ident: str) -> str:
    text = ident.replace("_", " ").replace("-", " ")
    return text[:1].upper() + text[1:]


def _catalogue_choices(spec: FieldSpec, rb: Rulebase) -> tuple[Choice, ...]:
    assert spec.choices is not None
    if spec.choices_from == "red_flags":
        flags = rb.red_flags
        return tuple(Choice(c, flags[c].description if c in flags else _words(c),
                            f"Possible {flags[c].suspected} ({flags[c].urgency})" if c in flags else None)
                     for c in spec.choices)
    if spec.choices_from in ("conditions", "local_conditions"):
        cis = rb.contraindications
        return tuple(Choice(c, cis[c].description if c in cis else _words(c)) for c in spec.choices)
    return tuple(Choice(c, _words(c)) for c in spec.choices)


def read_form(items: Sequence[tuple[str, str]], rec: Recommender) -> tuple[dict[str, Any], dict[str, str]]:
    """The profile a submitted form describes, and the library's error for each field it refuses.

    Values are converted only from the form's encoding (text) to the type the
    field's spec names; a value that does not convert is passed on as text,
    so the error the person sees is the library's own ("expected an integer
    from 0 to 10, got str 'ten'").
    """
    fields = rec.fields
    given: dict[str, list[str]] = {}
    for key, value in items:
        given.setdefault(key, []).append(value)
    profile: dict[str, Any] = {}
    for key, values in given.items():
        spec = fields.get(key)
        if spec is None:
            profile[key] = values[-1]  # the library names the unknown field, with a did-you-mean
            continue
        if spec.type == "list":
            if spec.choices:
                items_ = [v for v in values if v]
            else:
                items_ = [line.strip() for v in values for line in v.splitlines() if line.strip()]
            if items_:
                profile[key] = items_
            continue
        value = values[-1].strip()
        if value == "":
            continue
        if spec.type == "bool":
            profile[key] = {YES: True, NO: False}.get(value, value)
        elif spec.type in ("int", "number"):
            profile[key] = _number(value)
        else:
            profile[key] = value
    errors: dict[str, str] = {}
    for key, value in profile.items():
        spec = fields.get(key)
        if spec is None:
            continue
        try:
            spec.validate(value, key)
        except ProfileError as exc:
            errors[key] = str(exc)
    return profile, errors


def _number(text: str) -> Any:
    if _INT.match(text):
        return int(text)
    try:
        value = float(text)
    except ValueError:
        return text
    return value


@attrs.frozen
class PageState:
    """What the template shows: the form's values and errors, and a result if there is one."""

    values: Mapping[str, Any] = attrs.field(factory=dict)
    errors: Mapping[str, str] = attrs.field(factory=dict)
    general_errors: tuple[str, ...] = ()
    result: Recommendation | None = None


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("backcare._serve", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["evidence_meaning"] = EVIDENCE_MEANING
    env.filters["words"] = _words
    return env


def checked(state: PageState, name: str, value: str) -> bool:
    """Whether the form should show ``value`` as chosen for field ``name``."""
    current = state.values.get(name)
    if isinstance(current, list):
        return value in current
    if isinstance(current, bool):
        return value == (YES if current else NO)
    return current is not None and str(current) == value


def shown(state: PageState, name: str, spec: FieldSpec) -> str:
    """The text an input should hold: what was submitted, else the field's default."""
    current = state.values.get(name, spec.default)
    if current is None:
        return ""
    if isinstance(current, list):
        return "\n".join(str(v) for v in current)
    return str(current)
