"""The rulebase as loaded values: what a rule file means once it is parsed.

These classes are the single definition the loader fills, the engine compiles,
the reference evaluator interprets and the documentation renders. They hold no
behaviour beyond describing themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar

import attrs

from ._profile import COMPUTED_FACTS, FieldSpec, Scalar

T = TypeVar("T")

Evidence = Literal["guideline", "trial", "low", "claim", "refuted"]
#: Strongest first. A chain of reasoning is as strong as its weakest step, and
#: a technique's evidence is the weakest step of the chains that support it.
EVIDENCE_LEVELS: tuple[str, ...] = ("guideline", "trial", "low", "claim", "refuted")
EVIDENCE_MEANING: dict[str, str] = {
    "guideline": "a clinical guideline recommends it for this case",
    "trial": "randomised trials or a systematic review support it",
    "low": "low-quality or mixed evidence",
    "claim": "the article asserts it; no good evidence was found",
    "refuted": "the article asserts it, but research found the opposite",
}
#: The levels that count as support under the ``evidence`` ranking policy.
SUPPORTED_LEVELS: tuple[str, ...] = ("guideline", "trial", "low")
#: A step at this level never adds to a score, under any ranking policy.
REFUTED = "refuted"

Ranking = Literal["seed", "evidence"]
#: How recommended techniques are ordered. ``seed``: by their whole score, the
#: article's reasoning included; ``evidence``: first by the part of the score
#: supported at ``low`` or better, so that the article's claims never lift a
#: technique above a better-supported one.
RANKINGS: tuple[str, ...] = ("seed", "evidence")
RANKING_MEANING: dict[str, str] = {
    "seed": "by score, the article's own reasoning included",
    "evidence": "first by the points that rest on evidence of low quality or better; "
    "the article's claims only break ties",
}

Urgency = Literal["emergency", "urgent", "routine"]
#: Most urgent first.
URGENCIES: tuple[str, ...] = ("emergency", "urgent", "routine")

Pressure = Literal["light", "moderate", "firm", "deep"]
PRESSURES: tuple[str, ...] = ("light", "moderate", "firm", "deep")

#: Condition operators and the durable-rules operator each compiles to.
OPERATORS: dict[str, str] = {
    "eq": "",
    "ne": "$neq",
    "gt": "$gt",
    "ge": "$gte",
    "lt": "$lt",
    "le": "$lte",
    "in": "$or",
    "contains": "",
    "lacks": "",
    "given": "",
}
#: Operators that test the profile as given, never derived facts: the engine
#: cannot see an absence, so these are decided before it runs.
INPUT_OPERATORS: tuple[str, ...] = ("lacks", "given")


@attrs.frozen
class Origin:
    """Where a piece of rule data came from, for error messages and docs."""

    file: str
    line: int | None = None
    pack: str | None = attrs.field(default=None, eq=False)
    #: Lines of the entry's keys, so later checks can point at the key itself.
    key_lines: tuple[tuple[str, int], ...] = attrs.field(default=(), eq=False, repr=False)

    def __str__(self) -> str:
        return self.file if self.line is None else f"{self.file}:{self.line}"

    def line_of(self, key: str | None) -> int | None:
        """The line of ``key`` (its first dotted part) in this entry, else the entry's."""
        if key:
            found = dict(self.key_lines).get(key.split(".")[0])
            if found is not None:
                return found
        return self.line


@attrs.frozen
class Source:
    """A citation: a passage of the seed document, a trial or a guideline."""

    id: str
    kind: Literal["seed", "review", "trial", "guideline", "study", "convention"]
    citation: str
    passage: str | None = None
    origin: Origin | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class Technique:
    """A massage technique that rules can score."""

    id: str
    name: str
    description: str
    pressure: Pressure
    origin: Origin | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class Test:
    """One comparison on a fact's value, e.g. ``gt 12``."""

    op: str
    value: Scalar | tuple[Scalar, ...]

    def describe(self) -> str:
        symbols = {"eq": "=", "ne": "≠", "gt": ">", "ge": "≥", "lt": "<", "le": "≤"}
        if self.op == "in":
            assert isinstance(self.value, tuple)
            return "in " + ", ".join(_show(v) for v in self.value)
        if self.op == "contains":
            return f"includes {_show(self.value)}"
        if self.op == "lacks":
            return f"does not include {_show(self.value)}"
        if self.op == "given":
            return "is given" if self.value else "is not given"
        return f"{symbols[self.op]} {_show(self.value)}"


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@attrs.frozen
class Condition:
    """A test on one fact; a rule fires when all its conditions hold."""

    fact: str
    tests: tuple[Test, ...]

    def describe(self) -> str:
        return f"{self.fact} " + " and ".join(t.describe() for t in self.tests)


@attrs.frozen
class Exclude:
    """A safety conclusion that removes techniques from the result."""

    techniques: tuple[str, ...] = ()
    max_pressure: Pressure | None = None
    only: tuple[str, ...] | None = None
    all: bool = False

    def describe(self) -> str:
        if self.all:
            return "no massage at all"
        parts = []
        if self.techniques:
            parts.append("exclude " + ", ".join(self.techniques))
        if self.max_pressure:
            parts.append(f"no technique firmer than {self.max_pressure} pressure")
        if self.only is not None:
            parts.append("only " + ", ".join(self.only))
        return "; ".join(parts)


@attrs.frozen
class Refer:
    """A safety conclusion: the person must see a clinician."""

    urgency: Urgency
    suspected: str


@attrs.frozen
class Conclusion:
    """What a rule concludes when it fires. Any combination may be present."""

    derive: tuple[tuple[str, Scalar], ...] = ()
    score: tuple[tuple[str, float], ...] = ()
    flag: tuple[str, ...] = ()
    condition: tuple[str, ...] = ()
    exclude: Exclude | None = None
    refer: Refer | None = None
    note: str | None = None
    warn: str | None = None

    def describe(self) -> str:
        parts: list[str] = []
        parts += [f"{f} = {_show(v)}" if v is not True else f"{f}" for f, v in self.derive]
        parts += [f"{w:+g} {t}" for t, w in self.score]
        parts += [f"red flag {f}" for f in self.flag]
        parts += [f"condition {c}" for c in self.condition]
        if self.exclude:
            parts.append(self.exclude.describe())
        if self.refer:
            parts.append(f"refer ({self.refer.urgency}): {self.refer.suspected}")
        if self.note:
            parts.append(self.note)
        if self.warn:
            parts.append(f"warning: {self.warn}")
        return "; ".join(parts)


@attrs.frozen
class Rule:
    """One declarative rule: conditions, a conclusion, and why it holds."""

    id: str
    title: str
    when: tuple[Condition, ...]
    then: Conclusion
    because: str
    source: str
    evidence: Evidence
    caveat: str | None = None
    caveat_source: str | None = None
    safety: bool = False
    origin: Origin | None = attrs.field(default=None, eq=False, repr=False)
    #: No study was found that tested this claim: results say so, citing nothing.
    untested: bool = False

    @property
    def facts_matched(self) -> tuple[str, ...]:
        return tuple(c.fact for c in self.when)


@attrs.frozen
class FactInfo:
    """A fact rules derive, with the words a result uses for it.

    Declared in a rule file as ``[[fact]]``, so a result says "tissue that
    has lost elasticity" where a rule derives ``poor_elasticity``.
    """

    name: str
    label: str
    description: str
    origin: Origin | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def id(self) -> str:
        """Facts are merged across packs by name, like other entries by id."""
        return self.name


@attrs.frozen
class RedFlag:
    """A warning sign of serious disease; the person must be referred."""

    id: str
    description: str
    suspected: str
    urgency: Urgency
    source: str
    origin: Origin | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class Contraindication:
    """A condition that rules out or limits massage."""

    id: str
    description: str
    effect: Literal["no_massage", "exclude", "avoid_area", "consult_first"]
    because: str
    source: str
    exclude: Exclude | None = None
    refer: Refer | None = None
    origin: Origin | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class Expectation:
    """What must hold for an embedded example's result."""

    first: str | None = None
    order: tuple[str, ...] = ()
    top_n: int = 3
    in_top: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    not_recommended: tuple[str, ...] = ()
    fired: tuple[str, ...] = ()
    not_fired: tuple[str, ...] = ()
    referral: str | None = None
    no_techniques: bool | None = None
    facts: tuple[tuple[str, Scalar], ...] = ()


@attrs.frozen
class Example:
    """A profile and what its result must show: a unit test inside a rule file."""

    name: str
    profile: tuple[tuple[str, object], ...]
    expect: Expectation
    origin: Origin | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class PackInfo:
    """Which pack a rulebase was built from, to name in every result's provenance.

    ``digest`` is a SHA-256 of the pack's files (their names relative to the
    pack and their text), so the same pack read from another directory has
    the same digest and a pack changed by one character has another.
    """

    name: str
    digest: str
    version: str | None = None
    description: str | None = None
    default: bool = False
    #: Where the loader read it (a path, or an in-memory pack's name): never part of a result.
    source: str = attrs.field(default="", eq=False, repr=False, metadata={"internal": True})


@attrs.frozen
class Protection:
    """Why a rule that is not itself a safety rule may not be disabled or replaced.

    ``needed_by`` lists the safety rules that test, directly or through other
    rules, a fact this rule derives.
    """

    rule_id: str
    needed_by: tuple[str, ...]


@attrs.frozen
class Rulebase:
    """Everything a recommender reasons with, merged from its packs.

    ``rules`` is sorted by id so that nothing downstream depends on the order
    in which files or packs were read, except where a pack overrides.
    """

    fields: dict[str, FieldSpec]
    techniques: dict[str, Technique]
    sources: dict[str, Source]
    rules: tuple[Rule, ...]
    red_flags: dict[str, RedFlag]
    contraindications: dict[str, Contraindication]
    urgency_actions: dict[str, str]
    examples: tuple[Example, ...]
    safety_overrides: tuple[str, ...] = ()
    #: Rules a later pack disabled: gone from ``rules``, but still names an
    #: earlier pack's examples may use.
    disabled: tuple[str, ...] = ()
    #: For a routine referral: the firmest pressure allowed until assessment.
    urgency_limits: dict[str, str] = attrs.Factory(dict)
    #: Ordinary rules that safety rules depend on, so protected like them.
    protected: dict[str, Protection] = attrs.Factory(dict)
    #: Technique attributes that safety rules read (``pressure``), so a pack
    #: cannot change them on an existing technique without the opt-in.
    protected_attributes: tuple[str, ...] = ()
    packs: tuple[PackInfo, ...] = ()
    #: The ranking policy the packs ask for (the last that sets one), if any.
    ranking: str | None = None
    #: The derived facts packs declare with ``[[fact]]``, by name.
    facts: dict[str, FactInfo] = attrs.Factory(dict)
    by_id: dict[str, Rule] = attrs.field(init=False, eq=False, repr=False)
    _memo: dict[str, Any] = attrs.field(init=False, eq=False, repr=False, factory=dict)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "by_id", {r.id: r for r in self.rules})

    def memo(self, key: str, build: Callable[[Rulebase], T]) -> T:
        """``build(self)``, computed once per rulebase and kept as long as it lives.

        The reference evaluator and the reasoning each derive lookup tables
        from the rules; a rulebase never changes once loaded, so
        they are built on first use and shared by every later call.
        """
        found = self._memo.get(key)
        if found is None:
            found = self._memo.setdefault(key, build(self))
        return found  # type: ignore[no-any-return]

    def is_safety(self, rule_id: str) -> bool:
        """A safety rule, or a rule a safety rule depends on: both are protected."""
        rule = self.by_id.get(rule_id)
        return bool(rule and rule.safety) or rule_id in self.protected

    def fact_names(self) -> set[str]:
        """Every name a condition may test: profile fields, computed facts and derived facts."""
        names = set(self.fields) | set(COMPUTED_FACTS)
        for rule in self.rules:
            names.update(f for f, _ in rule.then.derive)
        return names
