"""The schema of a rule file, written once: every table, the keys it accepts and what they mean.

The parser checks files against it, ``backcare schema pack`` and the
documentation render it, so the three cannot disagree.
"""

from __future__ import annotations

import re

import attrs

from .._model import EVIDENCE_LEVELS, PRESSURES, RANKINGS, URGENCIES
from .._profile import FIELD_TYPES
from .limits import MAX_WEIGHT

ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,79}$")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


#: The kinds of source a ``[[source]]`` may be, and a contraindication's effects.
SOURCE_KINDS: tuple[str, ...] = ("seed", "review", "trial", "guideline", "study", "convention")
EFFECTS: tuple[str, ...] = ("no_massage", "exclude", "avoid_area", "consult_first")


@attrs.frozen
class Key:
    """One key a rule-file table accepts.

    ``choices``, when given, are the only values a string key accepts; the
    parser checks them and ``backcare schema pack`` lists them. A table's
    value is described by ``keys`` (a table of known keys) or ``values``
    (a table keyed by names: ``condition``, ``weight``, ``scalar`` or
    ``any`` says what each value is).
    """

    name: str
    type: str
    doc: str
    required: bool = False
    choices: tuple[str, ...] = ()
    keys: tuple[Key, ...] = ()
    values: str = ""


def _keys(*keys: Key) -> dict[str, Key]:
    return {k.name: k for k in keys}


EXCLUDE_KEYS = _keys(
    Key("techniques", "list of ids", "Techniques ruled out."),
    Key("max_pressure", "string", "Rule out techniques firmer than this.", choices=PRESSURES),
    Key("only", "list of ids", "Rule out every technique but these."),
    Key("all", "bool", "Rule out every technique."),
)
REFER_KEYS = _keys(
    Key("urgency", "string", "emergency, urgent or routine.", True, URGENCIES),
    Key("suspected", "string", "What the clinician should rule out.", True),
)
EXPECT_KEYS = _keys(
    Key("first", "id", "This technique ranks first."),
    Key("order", "list of ids", "These techniques are recommended, in this relative order."),
    Key("top_n", "int", "How many places `in_top` looks at (default 3)."),
    Key("in_top", "list of ids", "These techniques are among the first `top_n`."),
    Key("absent", "list of ids", "These techniques are not recommended."),
    Key("excluded", "list of ids", "These techniques are in `excluded`."),
    Key("not_recommended", "list of ids", "These techniques are in `not_recommended` (score 0 or less, or demoted)."),
    Key("fired", "list of ids", "These rules fired."),
    Key("not_fired", "list of ids", "These rules did not fire."),
    Key("referral", "string", "The referral urgency, or none.", choices=(*URGENCIES, "none")),
    Key("no_techniques", "bool", "No technique is recommended (true) or at least one is (false)."),
    Key("facts", "table", "These facts were derived, with these values.", values="scalar"),
)
URGENCY_KEYS = _keys(
    Key("action", "string", "What the person should do, shown with every referral of this urgency: whom to "
        "see and how soon.", True),
    Key("max_pressure", "string", "Routine only: the firmest pressure allowed until the person is assessed.",
        choices=PRESSURES),
)
THEN_KEYS = _keys(
    Key("derive", "string or table", "Derive a fact: a name (value true) or { name = value, ... }.",
        values="scalar"),
    Key("score", "table", "Add weights to techniques: { technique_id = weight, ... }, each weight a number "
        f"from -{MAX_WEIGHT} to {MAX_WEIGHT}.", values="weight"),
    Key("flag", "id or list of ids", "Raise red flags (safety)."),
    Key("condition", "id or list of ids", "Add contraindications to the person's conditions, as if listed (safety)."),
    Key("exclude", "table", "Rule out techniques: { techniques, max_pressure, only, all } (safety).",
        keys=tuple(EXCLUDE_KEYS.values())),
    Key("refer", "table", "Refer to a clinician: { urgency, suspected } (safety).", keys=tuple(REFER_KEYS.values())),
    Key("note", "string", "Add a note to the result."),
    Key("warn", "string", "Add a warning to the result (safety)."),
)

_REPLACE = Key("replace", "bool", "Set to true to replace an entry of the same id from an earlier pack.")

#: Every table a rule file may contain, and the keys each accepts.
SCHEMA: dict[str, dict[str, Key]] = {
    "pack": _keys(
        Key("name", "string", "A short name for the pack, shown in errors and docs."),
        Key("description", "string", "What the pack is for."),
        Key("version", "string", "The pack's version, named in every result's provenance."),
        Key("ranking", "string", "The ranking policy this pack asks for: " + ", ".join(RANKINGS)
            + ". A Recommender's own ranking= wins over it.", choices=RANKINGS),
    ),
    "field": _keys(
        Key("name", "name", "The profile field name (lower_snake_case).", True),
        Key("type", "string", "One of " + ", ".join(FIELD_TYPES) + ".", True, FIELD_TYPES),
        Key("description", "string", "What the field means, for forms and docs.", True),
        Key("minimum", "number", "Smallest accepted value (int and number fields)."),
        Key("maximum", "number", "Largest accepted value (int and number fields)."),
        Key("choices", "list of strings", "The accepted values (string fields, or items of list fields)."),
        Key("label", "string", "A short name results use in sentences (default: the name in words)."),
    ),
    "fact": _keys(
        Key("name", "name", "A fact rules derive (lower_snake_case).", True),
        Key("label", "string", "What results call it, in words a person reads.", True),
        Key("description", "string", "What the fact means.", True),
        _REPLACE,
    ),
    "technique": _keys(
        Key("id", "id", "Technique id, used in rules and results.", True),
        Key("name", "string", "Display name.", True),
        Key("description", "string", "What the therapist does.", True),
        Key("pressure", "string", "How firm it is: " + ", ".join(PRESSURES) + ".", True, PRESSURES),
        _REPLACE,
    ),
    "source": _keys(
        Key("id", "id", "Citation key that rules name in `source`.", True),
        Key("kind", "string", ", ".join(SOURCE_KINDS[:-1]) + " or " + SOURCE_KINDS[-1] + ".", True, SOURCE_KINDS),
        Key("citation", "string", "The full reference.", True),
        Key("passage", "string", "For the seed: the passage the rule encodes."),
        _REPLACE,
    ),
    "rule": _keys(
        Key("id", "id", "Unique rule id.", True),
        Key("title", "string", "One line saying what the rule does.", True),
        Key("when", "table", "Conditions: fact name = value, or = { op = value, ... }.", True, values="condition"),
        Key("then", "table", "The conclusion: derive, score, flag, condition, exclude, refer, note, warn.", True,
            keys=tuple(THEN_KEYS.values())),
        Key("because", "string", "Why the conclusion follows, in words a person can read.", True),
        Key("source", "id", "The source id the rule encodes.", True),
        Key("evidence", "string", "How strong the evidence is: " + ", ".join(EVIDENCE_LEVELS) + ".", True,
            EVIDENCE_LEVELS),
        Key("caveat", "string", "What the evidence says against or beyond the claim."),
        Key("caveat_source", "id", "The source id behind the caveat."),
        Key("safety", "bool", "Marks a safety rule; required for flag, condition, exclude, refer and warn."),
        Key("untested", "bool", "True where no study was found that tested the claim: results say so and cite "
            "nothing for it (a caveat then cites only what its source reports)."),
        _REPLACE,
    ),
    "red_flag": _keys(
        Key("id", "id", "The id a profile lists in red_flags.", True),
        Key("description", "string", "The sign in plain words.", True),
        Key("suspected", "string", "The serious condition it may point to.", True),
        Key("urgency", "string", "emergency, urgent or routine.", True, URGENCIES),
        Key("source", "id", "The source id.", True),
        _REPLACE,
    ),
    "contraindication": _keys(
        Key("id", "id", "The id a profile lists in conditions.", True),
        Key("description", "string", "The condition in plain words.", True),
        Key("effect", "string", "no_massage, exclude, avoid_area or consult_first.", True, EFFECTS),
        Key("because", "string", "Why it limits massage.", True),
        Key("source", "id", "The source id.", True),
        Key("exclude", "list of ids", "Techniques ruled out (effect exclude)."),
        Key("max_pressure", "string", "Rule out techniques firmer than this (effect exclude).", choices=PRESSURES),
        Key("only", "list of ids", "Rule out every technique but these (effect exclude)."),
        Key("refer", "string", "Also refer with this urgency.", choices=URGENCIES),
        Key("suspected", "string", "With refer: what the clinician should rule out."),
        _REPLACE,
    ),
    "urgency": _keys(*(Key(u, "table", f"What a {u} referral tells the person: action, max_pressure.",
                           keys=tuple(URGENCY_KEYS.values())) for u in URGENCIES)),
    "example": _keys(
        Key("name", "string", "The example's name, shown when it fails.", True),
        Key("profile", "table", "The profile to recommend for.", True, values="any"),
        Key("expect", "table", "What the result must show.", True, keys=tuple(EXPECT_KEYS.values())),
    ),
}

#: Keys of a rule file that are not tables: they go before its first table.
TOP_LEVEL_KEYS = _keys(
    Key("disable", "list of ids", "Rules of earlier packs to switch off, by id."),
)
TOP_LEVEL = {*SCHEMA, *TOP_LEVEL_KEYS}
SAFETY_CONCLUSIONS = ("flag", "condition", "exclude", "refer", "warn")
