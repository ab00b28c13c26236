"""Questions about a result: why is a technique not recommended, and what would change it?

Both read the rulebase that produced the result, never a description of it:
``why_not`` walks the rules that could have scored a technique back to the
conditions that failed; ``what_if`` takes its candidate changes from the
rules' own conditions and evaluates each through the same recommender.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from ._engine import Fact, condition_fact
from ._errors import BackcareError, ProfileError, UnknownIdError, did_you_mean
from ._inputs import input_facts
from ._loader.safety import derived_by, may_hold
from ._model import REFUTED, Condition, Rule, Rulebase, Test
from ._oracle import compare
from ._profile import COMPUTED_FACTS, Scalar
from ._reasoning import Words, words
from ._result import Recommendation, Step

#: How many near misses :class:`WhyNot` keeps; the nearest come first.
MAX_MISSES = 8


@attrs.frozen
class Miss:
    """A rule that would have raised a technique's score, and what it lacked.

    ``missing`` lists, in words, the conditions on the profile that would
    have to hold (through the rules that derive them, where a condition is on
    a derived fact); ``distance`` is how many there are.
    """

    #: The rule that could have scored the technique.
    rule_id: str
    #: Its title.
    title: str
    #: The points it would have added.
    weight: float
    #: Its evidence level.
    evidence: str
    #: The conditions on the profile that would have to hold, in words.
    missing: tuple[str, ...]
    #: How many conditions are missing; the nearest rules come first.
    distance: int


@attrs.frozen
class WhyNot:
    """Why one technique is where it is in a result.

    ``status`` is ``recommended`` (``rank`` says where), ``excluded`` (a
    safety rule or referral rules it out: ``rules`` are theirs),
    ``demoted`` (a rule counts against it: ``rules``), ``no_points`` (its
    score is 0 or less) or ``unsupported`` (no rule scored it: ``misses``
    lists the rules that could have, nearest first).
    """

    #: The technique's id.
    technique: str
    #: Its name, for people.
    name: str
    #: ``recommended``, ``excluded``, ``demoted``, ``no_points`` or ``unsupported``.
    status: str
    #: The answer in one sentence.
    summary: str
    #: Its place among the recommended techniques, for ``recommended``.
    rank: int | None = None
    #: The rules that exclude or demote it (or, if recommended, its rationale).
    rules: tuple[Step, ...] = ()
    #: For ``unsupported``: the rules that could have scored it, nearest first.
    misses: tuple[Miss, ...] = ()

    def __str__(self) -> str:
        lines = [self.summary]
        for s in self.rules:
            lines.append(f"  - {s.title}: {s.conclusion} [{s.rule_id}]")
        for m in self.misses:
            lines.append(f"  - {m.title} [{m.rule_id}] would add {m.weight:g} (evidence: {m.evidence}) if: "
                         + "; ".join(m.missing))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        from ._result import _plain

        return _plain(self)  # type: ignore[no-any-return]


@attrs.frozen
class WhatIf:
    """A change to one field, and what it would change in the result.

    ``values`` are the field's new values that give this same outcome
    (``None``: not given). ``top`` and ``referral`` are the new top technique
    id and referral urgency, ``was_top`` and ``was_referral`` the current
    ones; ``top_name`` and ``was_top_name`` are the techniques' names.
    """

    #: The profile field to change.
    field: str
    #: The field's new values that give this outcome (``None``: not given).
    values: tuple[Any, ...]
    #: The change in words ("age 15 instead of 45").
    change: str
    #: The new top technique's id, or ``None``.
    top: str | None
    #: The new referral urgency, or ``None``.
    referral: str | None
    #: The current top technique's id, or ``None``.
    was_top: str | None
    #: The current referral urgency, or ``None``.
    was_referral: str | None
    #: The new top technique's name.
    top_name: str | None
    #: The current top technique's name.
    was_top_name: str | None

    def __str__(self) -> str:
        effects = []
        if self.referral != self.was_referral:
            effects.append(f"referral {self.was_referral or 'none'} -> {self.referral or 'none'}")
        if self.top != self.was_top:
            effects.append(f"top technique {self.was_top_name or 'none'} -> {self.top_name or 'none'}")
        return f"{self.change}: " + ", ".join(effects)

    def to_dict(self) -> dict[str, Any]:
        from ._result import _plain

        return _plain(self)  # type: ignore[no-any-return]


def _recommender(result: Recommendation) -> Any:
    rec = result._recommender
    if rec is None:
        raise BackcareError(
            "this result has no recommender attached (it was unpickled or built by hand): "
            "get it from Recommender.recommend() to ask why_not() or what_if()"
        )
    return rec


def why_not(result: Recommendation, technique: str) -> WhyNot:
    rec = _recommender(result)
    rb: Rulebase = rec.rulebase
    if not isinstance(technique, str) or technique not in rb.techniques:
        shown = repr(technique)[:100]
        raise UnknownIdError(
            f"unknown technique {shown}{did_you_mean(str(technique)[:100], rb.techniques)}; known techniques: "
            + ", ".join(rb.techniques)
        )
    name = rb.techniques[technique].name
    for rank, t in enumerate(result.techniques, 1):
        if t.id == technique:
            return WhyNot(technique, name, "recommended",
                          f"{name} is recommended, in place {rank} of {len(result.techniques)}.", rank=rank,
                          rules=t.rationale)
    for e in result.excluded:
        if e.technique == technique:
            withheld = result.referral is not None and all(
                s.rule_id in {r.rule_id for r in result.referral.rationale} for s in e.reasons)
            why = ("withheld because the profile needs a clinician's assessment first" if withheld
                   else "ruled out by safety rules")
            return WhyNot(technique, name, "excluded", f"{name} is excluded: {why}.", rules=e.reasons)
    for n in result.not_recommended:
        if n.technique == technique:
            if n.reason == "demoted":
                steps = tuple(s for s in n.rationale if s.rule_id in n.demoted_by)
                return WhyNot(technique, name, "demoted",
                              f"{name} is not recommended: rules count against it for this profile.", rules=steps)
            return WhyNot(technique, name, "no_points",
                          f"{name} is not recommended: its score is {n.score:g}, so nothing here speaks for it.",
                          rules=n.rationale)
    profile = rec.profile(dict(result.profile))
    facts = set(input_facts(rb, profile)) | {(d.name, d.value) for d in result.derived}
    misses = _Misses(rb, facts).for_technique(technique)
    summary = (f"{name} is not recommended: no rule scored it for this profile. "
               + ("The nearest rules that would have:" if misses else "No rule in the packs in use scores it."))
    return WhyNot(technique, name, "unsupported", summary, misses=tuple(misses[:MAX_MISSES]))


class _Misses:
    """How far each rule is from firing, in conditions on the profile, through the rules that derive facts."""

    def __init__(self, rb: Rulebase, facts: set[Fact]) -> None:
        self.rb = rb
        self.words: Words = words(rb)
        self.by_name: dict[str, list[Scalar]] = {}
        for n, v in facts:
            self.by_name.setdefault(n, []).append(v)
        self.derivers: dict[str, list[tuple[Rule, object]]] = {}
        for rule in rb.rules:
            for fact, value in derived_by(rule):
                self.derivers.setdefault(fact, []).append((rule, value))
        self.memo: dict[str, tuple[int, tuple[str, ...]] | None] = {}

    def holds(self, cond: Condition) -> bool:
        for value in self.by_name.get(condition_fact(cond), ()):
            if all(_test_holds(t, value) for t in cond.tests):
                return True
        return False

    def rule_cost(self, rule: Rule, visiting: frozenset[str]) -> tuple[int, tuple[str, ...]] | None:
        if rule.id in self.memo:
            return self.memo[rule.id]
        if rule.id in visiting:
            return None
        total = 0
        missing: list[str] = []
        for cond in rule.when:
            found = self.cond_cost(cond, visiting | {rule.id})
            if found is None:
                self.memo[rule.id] = None
                return None
            total += found[0]
            missing += found[1]
        out = (total, tuple(dict.fromkeys(missing)))
        self.memo[rule.id] = out
        return out

    def cond_cost(self, cond: Condition, visiting: frozenset[str]) -> tuple[int, tuple[str, ...]] | None:
        if self.holds(cond):
            return (0, ())
        options: list[tuple[int, tuple[str, ...]]] = []
        if cond.fact in self.rb.fields or cond.fact in COMPUTED_FACTS:
            options.append((1, (self.words.condition(cond),)))
        if not any(t.op in ("lacks", "given") for t in cond.tests):
            for rule, value in self.derivers.get(cond.fact, ()):
                if may_hold(cond, value):
                    found = self.rule_cost(rule, visiting)
                    if found is not None:
                        options.append(found)
        return min(options, key=lambda o: (o[0], o[1])) if options else None

    def for_technique(self, technique: str) -> list[Miss]:
        out = []
        for rule in self.rb.rules:
            weight = dict(rule.then.score).get(technique)
            if weight is None or weight <= 0 or rule.evidence == REFUTED:
                continue
            found = self.rule_cost(rule, frozenset())
            if found is None or found[0] == 0:
                continue
            out.append(Miss(rule.id, rule.title, weight, rule.evidence, found[1], found[0]))
        out.sort(key=lambda m: (m.distance, -m.weight, m.rule_id))
        return out


def _test_holds(test: Test, value: Scalar) -> bool:
    try:
        if test.op == "in":
            assert isinstance(test.value, tuple)
            return any(compare("eq", value, v) for v in test.value)
        assert not isinstance(test.value, tuple)
        return compare(test.op, value, test.value)
    except ValueError:
        return False


# ---------------------------------------------------------------------------
# What if


def what_if(result: Recommendation) -> tuple[WhatIf, ...]:
    rec = _recommender(result)
    rb: Rulebase = rec.rulebase
    base = dict(result.profile)
    was_top = result.techniques[0].id if result.techniques else None
    was_referral = result.referral.urgency if result.referral else None
    changes: list[tuple[str, Any, dict[str, Any]]] = []
    for field, value in candidates(rb, base):
        new = dict(base)
        if value is None:
            new.pop(field, None)
        else:
            new[field] = list(value) if isinstance(value, tuple) else value
        try:
            rec.profile(new)
        except ProfileError:
            continue  # not a profile anyone could give (e.g. away_from_back without the condition)
        changes.append((field, value, new))
    outcomes = rec.recommend_many([new for _, _, new in changes])
    text = words(rb)
    names = {tid: tech.name for tid, tech in rb.techniques.items()}
    groups: dict[tuple[str, str | None, str | None], list[Any]] = {}
    for (field, value, _), after in zip(changes, outcomes):
        top = after.techniques[0].id if after.techniques else None
        referral = after.referral.urgency if after.referral else None
        if top != was_top or referral != was_referral:
            groups.setdefault((field, top, referral), []).append(value)
    for values in groups.values():
        values.sort(key=lambda v: (v is None, isinstance(v, tuple), repr(v) if not isinstance(v, (int, float))
                                   else f"{float(v):030.10f}"))
    out = []
    for (field, top, referral), values in groups.items():
        out.append(WhatIf(field, tuple(values), _describe(text, field, base.get(field), values), top, referral,
                          was_top, was_referral, names.get(top or ""), names.get(was_top or "")))
    return tuple(out)


def _describe(words: Words, field: str, old: Any, values: list[Any]) -> str:
    """One change, or several to the same field with the same outcome, in words."""
    name = words.name(field)
    parts: list[str] = []
    numbers = sorted(v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool))
    if numbers:
        parts.append(f"{name} {_spans(numbers)}" + ("" if old is None else f" instead of {words.value(field, old)}"))
    for v in values:
        if isinstance(v, bool):
            parts.append(f"with {name}" if v else f"without {name}")
        elif isinstance(v, str):
            parts.append(f"{name} {words.value(field, v)}" + ("" if old is None else
                                                             f" instead of {words.value(field, old)}"))
    before = set(old or ()) if isinstance(old, (tuple, list)) else set()
    added = [i for v in values if isinstance(v, tuple) for i in v if i not in before]
    removed = [i for v in values if isinstance(v, tuple) for i in sorted(before) if i not in v]
    for verb, items in (("with", added), ("without", removed)):
        if len(items) == 1:
            parts.append(f"{verb} {words.fact(field, items[0])}")
        elif items:
            parts.append(f"{verb} any one of these {name}: " + "; ".join(words.item(field, i) for i in items))
    if None in values:
        parts.append(f"without giving {name}")
    return ", or ".join(parts)


def _spans(numbers: list[float]) -> str:
    """``[0, 1, 2, 3, 11, 12]`` as ``0 to 3, 11 or 12``."""
    runs: list[list[float]] = []
    for n in numbers:
        if runs and isinstance(n, int) and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    texts = [t for r in runs for t in ([f"{r[0]:g} to {r[-1]:g}"] if len(r) > 2 else [f"{x:g}" for x in r])]
    return texts[0] if len(texts) == 1 else ", ".join(texts[:-1]) + " or " + texts[-1]


def candidates(rb: Rulebase, profile: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Single-field changes worth trying, from the rules' own conditions, each once, in a stable order."""
    out: dict[tuple[str, str], tuple[str, Any]] = {}

    def add(field: str, value: Any) -> None:
        current = profile.get(field)
        if isinstance(value, tuple):
            if tuple(sorted(current or ())) == value:
                return
        elif value == current and type(value) is type(current):
            return
        out.setdefault((field, repr(value)), (field, value))

    for rule in rb.rules:
        for cond in rule.when:
            if cond.fact in COMPUTED_FACTS:
                for field, value in _computed_candidates(cond, profile, rb):
                    add(field, value)
                continue
            spec = rb.fields.get(cond.fact)
            if spec is None:
                continue
            for test in cond.tests:
                for value in _values(spec.type, test, profile.get(cond.fact), spec.minimum, spec.maximum):
                    add(cond.fact, value)
    return [out[k] for k in sorted(out)]


def _values(kind: str, test: Test, current: Any, lo: float | None, hi: float | None) -> Iterable[Any]:
    if test.op == "given":
        return [None] if current is not None else []
    if kind == "bool":
        return [v for v in (True, False) if v != current]
    if kind == "list":
        items = set(current or ())
        item = test.value
        if item in items:
            return [tuple(sorted(items - {item}))]
        return [tuple(sorted(items | {item}))]
    values = test.value if isinstance(test.value, tuple) else (test.value,)
    if kind == "string":
        return [v for v in values if isinstance(v, str)]
    out: list[Any] = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if kind == "int":
            out += [math.floor(v) - (0 if v != math.floor(v) else 1), math.floor(v), math.ceil(v),
                    math.ceil(v) + (0 if v != math.ceil(v) else 1)]
        else:
            out += [math.nextafter(v, -math.inf), v, math.nextafter(v, math.inf)]
    return [v for v in dict.fromkeys(out)
            if (lo is None or v >= lo) and (hi is None or v <= hi)]


def _computed_candidates(cond: Condition, profile: Mapping[str, Any], rb: Rulebase) -> list[tuple[str, Any]]:
    """Ages and durations that move the age at onset across a rule's threshold."""
    if cond.fact != "onset_age":
        return []
    out: list[tuple[str, Any]] = []
    age, weeks = profile.get("age"), profile.get("pain_weeks")
    for test in cond.tests:
        values = test.value if isinstance(test.value, tuple) else (test.value,)
        for t in values:
            if isinstance(t, bool) or not isinstance(t, (int, float)):
                continue
            if weeks is not None:
                target = t + weeks / 52
                out += [("age", v) for v in (math.floor(target), math.floor(target) + 1)]
            if age is not None:
                target = 52 * (age - t)
                out += [("pain_weeks", v) for v in (math.floor(target), math.floor(target) + 1) if v >= 0]
    limits = {name: (spec.minimum, spec.maximum) for name, spec in rb.fields.items()}
    return [(f, v) for f, v in out
            if (limits[f][0] is None or v >= limits[f][0]) and (limits[f][1] is None or v <= limits[f][1])]


__all__ = ["Miss", "WhatIf", "WhyNot", "candidates", "what_if", "why_not"]
