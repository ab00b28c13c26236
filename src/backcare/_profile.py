"""The symptom profile: the one input backcare takes.

The field definitions live here once, as attrs fields carrying a
:class:`FieldSpec` in their metadata. Validation, the list of known fields,
the facts handed to the engine and the JSON Schema are all read from those
specs, so adding a field means editing one place. Rule packs may declare more
fields; they use the same :class:`FieldSpec` and land in :attr:`Profile.extra`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import attrs

from ._errors import ProfileError, did_you_mean
from ._text import quote

FieldType = Literal["bool", "int", "number", "string", "list"]
FIELD_TYPES: tuple[str, ...] = ("bool", "int", "number", "string", "list")

#: Upper bound on a profile string or list length: past this nothing sensible
#: is being described, and refusing beats handing megabytes to the engine.
MAX_TEXT = 200
MAX_ITEMS = 64

Scalar = bool | int | float | str
Value = Scalar | tuple[str, ...]


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


@attrs.frozen
class FieldSpec:
    """What one profile field accepts, and what it means.

    ``choices`` restricts a string, or each item of a list. ``choices_from``
    names a catalogue of the rulebase (``red_flags``, ``conditions`` or
    ``local_conditions``) whose ids are checked when a recommender validates
    the profile, because only the loaded rules know them. ``label`` is the
    short name results use in sentences, so a reader never meets a raw field
    name.
    """

    #: The field's name.
    name: str
    #: ``bool``, ``int``, ``number``, ``string`` or ``list``.
    type: str = attrs.field(validator=attrs.validators.in_(FIELD_TYPES))
    #: What the field means, for people.
    description: str
    #: The smallest number it accepts, if bounded.
    minimum: float | None = None
    #: The largest number it accepts, if bounded.
    maximum: float | None = None
    #: The values a string (or each item of a list) may take, if restricted.
    choices: tuple[str, ...] | None = None
    #: The catalogue whose ids a list takes (``red_flags``, ``conditions``, ``local_conditions``).
    choices_from: str | None = None
    #: The value used when the profile does not give one, if any.
    default: Value | None = None
    #: A short name for sentences ("weeks of pain").
    label: str | None = None
    #: Fields that must be given together with this one.
    requires: tuple[str, ...] = ()

    @property
    def display(self) -> str:
        """The name to show a person: the label, else the field name in words."""
        return self.label or self.name.replace("_", " ")

    def expected(self) -> str:
        """Say in words what this field takes, for error messages."""
        if self.type == "bool":
            return "true or false"
        if self.type in ("int", "number"):
            kind = "an integer" if self.type == "int" else "a number"
            if self.minimum is not None and self.maximum is not None:
                return f"{kind} from {_num(self.minimum)} to {_num(self.maximum)}"
            if self.minimum is not None:
                return f"{kind} >= {_num(self.minimum)}"
            if self.maximum is not None:
                return f"{kind} <= {_num(self.maximum)}"
            return kind
        if self.type == "string":
            if self.choices:
                return "one of " + ", ".join(repr(c) for c in self.choices)
            return f"a string of at most {MAX_TEXT} characters"
        what = f"a list of at most {MAX_ITEMS} strings"
        if self.choices_from:
            what += f" (ids from the {self.choices_from} catalogue)"
        return what

    def validate(self, value: object, field: str | None = None) -> Value:
        """Return ``value`` in canonical form or raise :class:`ProfileError`.

        Canonical means lists become sorted, de-duplicated tuples, so that two
        profiles meaning the same thing compare and hash equal.
        """
        where = field or self.name

        def fail(detail: str = "") -> ProfileError:
            got = f"got {_type_name(value)} {quote(value)}"
            return ProfileError(
                f"field {where!r}: expected {self.expected()}, {got}{detail}",
                field=where,
            )

        if self.type == "bool":
            if not isinstance(value, bool):
                raise fail()
            return value
        if self.type in ("int", "number"):
            ok = isinstance(value, int) or (self.type == "number" and isinstance(value, float))
            if isinstance(value, bool) or not ok:
                raise fail()
            assert isinstance(value, (int, float))
            if isinstance(value, float) and not math.isfinite(value):
                raise fail()
            if self.minimum is not None and value < self.minimum:
                raise fail()
            if self.maximum is not None and value > self.maximum:
                raise fail()
            return value
        if self.type == "string":
            if not isinstance(value, str) or len(value) > MAX_TEXT:
                raise fail()
            if self.choices and value not in self.choices:
                raise fail(did_you_mean(value, self.choices))
            return value
        # list of strings
        if not isinstance(value, (list, tuple)) or len(value) > MAX_ITEMS:
            raise fail()
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item or len(item) > MAX_TEXT:
                raise ProfileError(
                    f"field '{where}[{i}]': expected a non-empty id string, "
                    f"got {_type_name(item)} {quote(item)}",
                    field=f"{where}[{i}]",
                )
            if self.choices and item not in self.choices:
                listed = f"; expected one of {', '.join(self.choices)}" if len(self.choices) <= 30 else ""
                raise ProfileError(
                    f"field '{where}[{i}]': unknown id {quote(item)}{did_you_mean(item, self.choices)}{listed}",
                    field=f"{where}[{i}]",
                )
        return tuple(sorted(set(value)))


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _field(spec_type: str, description: str, **kw: Any) -> Any:
    """An attrs field whose validator and metadata come from one FieldSpec."""
    default = kw.pop("default", None)
    spec_holder: list[FieldSpec] = []

    def validate(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None:
            return
        if not spec_holder:
            spec_holder.append(attrs.evolve(attribute.metadata["spec"], name=attribute.name))
        canonical = spec_holder[0].validate(value, attribute.name)
        if canonical != value:
            raise ProfileError(
                f"field {attribute.name!r}: pass {quote(canonical)} (sorted, without duplicates)"
                " or build the profile with Profile.from_dict",
                field=attribute.name,
            )

    def convert(value: object) -> object:
        if isinstance(value, list):
            try:
                return tuple(sorted(set(value)))
            except TypeError:  # unhashable or mixed items: let the validator name them
                return tuple(value)
        return value

    spec = FieldSpec(name="", type=spec_type, description=description, default=default, **kw)
    return attrs.field(
        default=default,
        validator=validate,
        converter=convert if spec_type == "list" else None,
        metadata={"spec": spec},
        kw_only=True,
    )


def _sorted_items(value: Mapping[str, Value] | Iterable[tuple[str, Value]]) -> tuple[tuple[str, Value], ...]:
    """Pack-declared fields as sorted pairs, so equal profiles compare and hash equal."""
    return tuple(sorted(dict(value).items())) if value else ()


@attrs.frozen(cache_hash=True)
class Profile:
    """A person's back-pain symptom profile. Every field is optional.

    Unset fields are ``None`` and produce no facts, so no rule can fire on
    something the person did not say. ``extra`` holds fields declared by rule
    packs, as sorted ``(name, value)`` pairs; it is validated by the
    :class:`~backcare.Recommender` that knows those packs.

    >>> Profile(stiffness=True, pain_weeks=6).pain_weeks
    6
    >>> Profile(pain_intensity=11)
    Traceback (most recent call last):
    ...
    backcare.ProfileError: field 'pain_intensity': expected an integer from 0 to 10, got int 11
    """

    pain_weeks: int | None = _field(
        "int", "How many weeks the current episode of back pain has lasted.", minimum=0, maximum=6760,
        label="weeks of pain",
    )
    pain_intensity: int | None = _field(
        "int", "Pain on the 0-10 numeric rating scale (0 none, 10 worst imaginable).", minimum=0, maximum=10,
        label="pain on a 0-10 scale",
    )
    age: int | None = _field("int", "Age in years.", minimum=0, maximum=130, label="age")
    injury: bool | None = _field("bool", "The back was injured (a strain, a fall, a blow).", label="a back injury")
    inflammation: bool | None = _field("bool", "The painful area is inflamed.", label="inflammation")
    scar_tissue: bool | None = _field(
        "bool", "Scar tissue is known to be present in the painful area.", label="known scar tissue"
    )
    tight_bands: bool | None = _field(
        "bool", "Tight, very sensitive bands or knots in the back muscles (trigger points).",
        label="tight, sensitive bands in the back muscles",
    )
    stiffness: bool | None = _field("bool", "The back muscles or tendons feel stiff.", label="stiffness")
    reduced_range_of_motion: bool | None = _field(
        "bool", "Bending or turning is more limited than usual.", label="reduced range of motion"
    )
    slow_healing: bool | None = _field(
        "bool", "An injury is healing more slowly than expected.", label="an injury healing slowly"
    )
    sciatica: bool | None = _field(
        "bool",
        "Leg pain spreading from the back, typically below the knee and usually on one side, with or "
        "without numbness or pins and needles in that leg (sciatica). Pain or numbness in both legs is "
        "the red flag bilateral_leg_symptoms instead.",
        label="sciatica (leg pain spreading below the knee)",
    )
    goal: str | None = _field(
        "string",
        "What the person wants from massage.",
        choices=("relaxation", "long_term_relief"),
        label="goal",
    )
    pressure_tolerance: str | None = _field(
        "string",
        "How much pressure the person can comfortably take.",
        choices=("low", "medium", "high"),
        default="medium",
        label="pressure tolerance",
    )
    start_back_score: int | None = _field(
        "int",
        "STarT Back Screening Tool: the overall score, 0-9. Give it together with "
        "start_back_psychosocial; backcare derives the risk group (Hill 2008).",
        minimum=0, maximum=9, label="STarT Back overall score", requires=("start_back_psychosocial",),
    )
    start_back_psychosocial: int | None = _field(
        "int",
        "STarT Back Screening Tool: the psychosocial subscore (items 5-9), 0-5, at most the overall score. "
        "Give it together with start_back_score.",
        minimum=0, maximum=5, label="STarT Back psychosocial subscore", requires=("start_back_score",),
    )
    red_flags: tuple[str, ...] | None = _field(
        "list", "Warning signs of serious disease (ids from backcare.red_flags()).", choices_from="red_flags",
        label="warning signs",
    )
    conditions: tuple[str, ...] | None = _field(
        "list",
        "Conditions and treatments that limit massage (ids from backcare.conditions()).",
        choices_from="conditions",
        label="conditions",
    )
    away_from_back: tuple[str, ...] | None = _field(
        "list",
        "Local conditions from `conditions` (such as recent surgery or an open wound) that are not on the "
        "back, for example surgery on a knee. Every technique here is applied to the back, so a local "
        "condition not listed here counts as being on the back.",
        choices_from="local_conditions",
        label="conditions away from the back",
    )
    #: Fields declared by rule packs, as sorted ``(name, value)`` pairs.
    extra: tuple[tuple[str, Value], ...] = attrs.field(default=(), kw_only=True, converter=_sorted_items)

    def __attrs_post_init__(self) -> None:
        # Checks across fields: each field alone is valid by now.
        if self.away_from_back:
            listed = set(self.conditions or ())
            for i, item in enumerate(self.away_from_back):
                if item not in listed:
                    raise ProfileError(
                        f"field 'away_from_back[{i}]': {item!r} is not in conditions; list it in conditions "
                        "too (away_from_back only says where a listed condition is)",
                        field=f"away_from_back[{i}]",
                    )
        for name, spec in _CORE.items():
            if spec.requires and getattr(self, name) is not None:
                for missing in spec.requires:
                    if getattr(self, missing) is None:
                        raise ProfileError(
                            f"field {missing!r}: expected it with {name} (the two are given together), got nothing",
                            field=missing,
                        )
        if self.age is not None and self.pain_weeks is not None and self.pain_weeks > self.age * 52 + 52:
            raise ProfileError(
                f"field 'pain_weeks': expected at most {self.age * 52 + 52} for someone aged {self.age} (the pain "
                f"cannot have begun before birth), got {self.pain_weeks}",
                field="pain_weeks",
            )
        overall, psychosocial = self.start_back_score, self.start_back_psychosocial
        if overall is not None and psychosocial is not None and psychosocial > overall:
            raise ProfileError(
                f"field 'start_back_psychosocial': expected at most the overall score {overall} (its items "
                f"are part of the overall score), got {psychosocial}",
                field="start_back_psychosocial",
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, object], fields: Mapping[str, FieldSpec] | None = None) -> Profile:
        """Build a profile from plain data such as parsed JSON.

        Keys are checked against ``fields`` (by default the core fields; a
        recommender passes its own, which add pack-declared fields and the
        catalogue ids); an unknown key is an error with a did-you-mean, never
        silently ignored. ``None`` means "not given".
        """
        if not isinstance(data, Mapping):
            raise ProfileError(f"a profile must be a mapping of field names to values, got {_type_name(data)}")
        fields = fields if fields is not None else _CORE
        kwargs: dict[str, object] = {}
        extra: dict[str, Value] = {}
        for key in data:
            if not isinstance(key, str):
                raise ProfileError(f"profile keys must be strings, got {_type_name(key)} {quote(key)}")
        for key in sorted(data):
            value = data[key]
            spec = fields.get(key)
            if spec is None:
                raise ProfileError(
                    f"unknown profile field {quote(key)}{did_you_mean(key, fields)}; "
                    f"known fields: {', '.join(sorted(fields))}",
                    field=key,
                )
            if value is None:
                continue
            if key in _CORE:
                kwargs[key] = spec.validate(value)
            else:
                extra[key] = spec.validate(value)
        return cls(**kwargs, extra=extra)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe data with only the fields that are set, keys sorted."""
        out: dict[str, Any] = {}
        for name in core_fields():
            value = getattr(self, name)
            if value is not None:
                out[name] = list(value) if isinstance(value, tuple) else value
        for name, value in self.extra:
            out[name] = list(value) if isinstance(value, tuple) else value
        return dict(sorted(out.items()))

    def facts(self) -> list[tuple[str, Scalar]]:
        """The profile as ``(name, value)`` facts for the engine, computed facts included.

        A list field gives one fact per item, so rules test membership with
        ``contains``.
        """
        out: list[tuple[str, Scalar]] = []
        for name, value in self.to_dict().items():
            if isinstance(value, list):
                out.extend((name, item) for item in value)
            else:
                out.append((name, value))
        out += self.computed()
        return out

    def computed(self) -> list[tuple[str, Scalar]]:
        """The facts computed from given fields (see :data:`COMPUTED_FACTS`).

        ``onset_age`` is the age at which this episode began, so that "new
        back pain after 50" means onset after 50 whatever the duration. Two
        decimals are exact for whole ages and weeks: the nearest an onset can
        come to a whole year without reaching it is 1/52 of a year.
        """
        if self.age is None or self.pain_weeks is None:
            return []
        onset = round(self.age - self.pain_weeks / 52, 2)
        return [("onset_age", int(onset) if onset.is_integer() else onset)]


#: Facts computed from the given fields before the rules run. A rule may test
#: them like fields; a profile cannot give them and no rule may derive them.
COMPUTED_FACTS: dict[str, FieldSpec] = {
    "onset_age": FieldSpec(
        "onset_age", "number",
        "Age when this episode of pain began, in years: age - pain_weeks / 52, to two decimals. Computed "
        "when both age and pain_weeks are given; never given directly.",
        label="age when this pain began",
    ),
}


def core_fields() -> dict[str, FieldSpec]:
    """The built-in profile fields, in declaration order."""
    return _CORE


_CORE: dict[str, FieldSpec] = {
    a.name: attrs.evolve(a.metadata["spec"], name=a.name)
    for a in attrs.fields(Profile)
    if "spec" in a.metadata
}
