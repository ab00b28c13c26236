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
from ._result import Recommendation, Step, claim_mark, counted_by_evidence, points_breakdown, step_heading
from ._result import wrap as _wrap

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
    #: Where its points come from, by evidence level, and any never counted
    #: (for ``recommended`` and ``no_points``).
    points: str | None = None

    def __str__(self) -> str:
        lines = _wrap(self.summary)
        for s in self.rules:
            lines += _wrap(step_heading(s), "  - ", "    ")
        if self.points:
            lines += _wrap(self.points, "  ", "  ")
        for m in self.misses:
            lines += _wrap(f"{claim_mark(m.evidence)}{m.title} [{m.rule_id}] would add {m.weight:g} "
                           f"(evidence: {m.evidence}) if: " + "; ".join(m.missing), "  - ", "    ")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        from ._result import _plain

        return _plain(self)  # type: ignore[no-any-return]


@attrs.frozen
class WhatIf:
    """A change to one field, and what it would change in the result.

    ``values`` are the field's new values that give this same outcome
    (``None``: not given); for a whole-number field, each stands for a span
    of values between the rules' thresholds, and ``ranges`` are those spans
    joined (``None``: no bound). ``top`` and ``referral`` are the new top technique
    id and referral urgency, ``was_top`` and ``was_referral`` the current
    ones; ``top_name`` and ``was_top_name`` are the techniques' names.
    """

    #: The profile field to change.
    field: str
    #: The field's new values that give this outcome (``None``: not given).
    values: tuple[Any, ...]
    #: For an integer field, the spans of values ``(low, high)`` that give
    #: this outcome, each end ``None`` where the span is open.
    ranges: tuple[tuple[int | None, int | None], ...]
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
                          rules=t.rationale, points=points_breakdown(t.score_by_evidence, t.contributions))
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
                          rules=n.rationale,
                          points=points_breakdown(counted_by_evidence(n.contributions), n.contributions))
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
    changes: list[tuple[Candidate, dict[str, Any]]] = []
    for cand in candidates(rb, base):
        new = dict(base)
        if cand.value is None:
            new.pop(cand.field, None)
        else:
            new[cand.field] = list(cand.value) if isinstance(cand.value, tuple) else cand.value
        try:
            rec.profile(new)
        except ProfileError:
            continue  # not a profile anyone could give (e.g. away_from_back without the condition)
        changes.append((cand, new))
    outcomes = rec.recommend_many([new for _, new in changes])
    text = words(rb)
    names = {tid: tech.name for tid, tech in rb.techniques.items()}
    groups: dict[tuple[str, str | None, str | None], list[Candidate]] = {}
    for (cand, _), after in zip(changes, outcomes):
        top = after.techniques[0].id if after.techniques else None
        referral = after.referral.urgency if after.referral else None
        if top != was_top or referral != was_referral:
            groups.setdefault((cand.field, top, referral), []).append(cand)
    out = []
    for (field, top, referral), cands in groups.items():
        cands.sort(key=_candidate_order)
        spans = _merge_spans([c.span for c in cands if c.span is not None])
        out.append(WhatIf(field, tuple(c.value for c in cands), spans,
                          _describe(text, field, base.get(field), cands, spans, rb.fields.get(field)),
                          top, referral, was_top, was_referral, names.get(top or ""), names.get(was_top or "")))
    return tuple(out)


@attrs.frozen
class Candidate:
    """One value to try for one field; for a whole-number field, the span of values it stands for.

    Every rule compares a whole-number field with thresholds, so between two
    neighbouring thresholds every value gives the same result: one
    evaluation speaks for the whole span.
    """

    field: str
    value: Any
    span: tuple[int | None, int | None] | None = None


def _candidate_order(c: Candidate) -> tuple[Any, ...]:
    v = c.value
    if v is None:
        return (2, 0, "")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (0, float(v), "")
    return (1, 0, repr(v))


def _merge_spans(spans: list[tuple[int | None, int | None]]) -> tuple[tuple[int | None, int | None], ...]:
    """Adjacent spans of whole numbers joined: (0, 5) and (6, 10) are (0, 10)."""
    out: list[tuple[int | None, int | None]] = []
    for lo, hi in sorted(spans, key=lambda s: -math.inf if s[0] is None else s[0]):
        if out and out[-1][1] is not None and lo is not None and out[-1][1] + 1 >= lo:
            prev_lo, prev_hi = out[-1]
            assert prev_hi is not None
            out[-1] = (prev_lo, None if hi is None else max(prev_hi, hi))
        else:
            out.append((lo, hi))
    return tuple(out)


def _describe(words: Words, field: str, old: Any, cands: list[Candidate],
              spans: tuple[tuple[int | None, int | None], ...], spec: Any) -> str:
    """One change, or several to the same field with the same outcome, in words."""
    name = words.name(field)
    instead = "" if old is None or isinstance(old, (tuple, list)) else f" instead of {words.value(field, old)}"
    parts: list[str] = []
    if spans:
        lo_limit = spec.minimum if spec is not None else None
        hi_limit = spec.maximum if spec is not None else None
        texts = [_span_text(lo, hi, lo_limit, hi_limit) for lo, hi in spans]
        parts.append(f"{name} {' or '.join(texts)}{instead}")
    for c in cands:
        v = c.value
        if c.span is not None or v is None or isinstance(v, tuple):
            continue
        if isinstance(v, bool):
            parts.append(f"with {name}" if v else f"without {name}")
        else:
            parts.append(f"{name} {words.value(field, v)}{instead}")
    before = set(old or ()) if isinstance(old, (tuple, list)) else set()
    added = [i for c in cands if isinstance(c.value, tuple) for i in c.value if i not in before]
    removed = [i for c in cands if isinstance(c.value, tuple) for i in sorted(before) if i not in c.value]
    for verb, items in (("with", added), ("without", removed)):
        if len(items) == 1:
            parts.append(f"{verb} {words.fact(field, items[0])}")
        elif items:
            parts.append(f"{verb} any one of these {name}: " + "; ".join(words.item(field, i) for i in items))
    if any(c.value is None for c in cands):
        parts.append(f"without giving {name}")
    return ", or ".join(parts)


def _span_text(lo: int | None, hi: int | None, lo_limit: float | None, hi_limit: float | None) -> str:
    if lo is not None and lo == hi:
        return f"{lo}"
    if hi is None or (hi_limit is not None and hi >= hi_limit):
        return f"{lo} or more"
    if lo is None or (lo_limit is not None and lo <= lo_limit and lo != 0):
        return f"{hi} or less"
    return f"{lo} to {hi}"


def candidates(rb: Rulebase, profile: Mapping[str, Any]) -> list[Candidate]:
    """Single-field changes worth trying, from the rules' own conditions, each once, in a stable order.

    A whole-number field is cut at every threshold the rules compare it with
    (through the age at onset too), and one value stands for each span
    between cuts; other fields get each value the rules test.
    """
    points: dict[tuple[str, str], Candidate] = {}
    cuts: dict[str, set[int]] = {}
    absent: set[str] = set()

    def add(field: str, value: Any) -> None:
        current = profile.get(field)
        if isinstance(value, tuple):
            if tuple(sorted(current or ())) == value:
                return
        elif value == current and type(value) is type(current):
            return
        points.setdefault((field, repr(value)), Candidate(field, value))

    for rule in rb.rules:
        for cond in rule.when:
            if cond.fact in COMPUTED_FACTS:
                for field, cut in _computed_cuts(cond, profile):
                    cuts.setdefault(field, set()).add(cut)
                continue
            spec = rb.fields.get(cond.fact)
            if spec is None:
                continue
            for test in cond.tests:
                if test.op == "given":
                    if profile.get(cond.fact) is not None:
                        absent.add(cond.fact)
                elif spec.type == "int":
                    cuts.setdefault(cond.fact, set()).update(_cuts(test))
                else:
                    for value in _values(spec.type, test, profile.get(cond.fact), spec.minimum, spec.maximum):
                        add(cond.fact, value)
    out = [points[k] for k in sorted(points)]
    for field in sorted(cuts):
        spec = rb.fields.get(field)
        if spec is not None:
            out += _spans(field, cuts[field], spec.minimum, spec.maximum, profile.get(field))
    out += [Candidate(field, None) for field in sorted(absent)]
    return out


def _cuts(test: Test) -> set[int]:
    """Where a test on a whole number changes: a cut at c separates c from c + 1."""
    values = test.value if isinstance(test.value, tuple) else (test.value,)
    out: set[int] = set()
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if test.op in ("gt", "le"):
            out.add(math.floor(v))
        elif test.op in ("ge", "lt"):
            out.add(math.ceil(v) - 1)
        elif float(v).is_integer():  # eq, ne, in: the value itself stands apart
            out.update((int(v) - 1, int(v)))
    return out


def _spans(field: str, cuts: set[int], minimum: float | None, maximum: float | None, current: Any) -> list[Candidate]:
    lo = None if minimum is None else math.ceil(minimum)
    hi = None if maximum is None else math.floor(maximum)
    inside = sorted(c for c in cuts if (lo is None or c >= lo) and (hi is None or c < hi))
    starts = [lo, *(c + 1 for c in inside)]
    ends = [*inside, hi]
    out = []
    for start, end in zip(starts, ends):
        if start is None and end is None:
            continue
        if current is not None and (start is None or current >= start) and (end is None or current <= end):
            continue  # the span the profile is in already: nothing changes
        out.append(Candidate(field, start if start is not None else end, (start, end)))
    return out


def _values(kind: str, test: Test, current: Any, lo: float | None, hi: float | None) -> Iterable[Any]:
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
    for v in values:  # a number field: each threshold and its nearest neighbours either side
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        out += [math.nextafter(v, -math.inf), v, math.nextafter(v, math.inf)]
    return [v for v in dict.fromkeys(out) if (lo is None or v >= lo) and (hi is None or v <= hi)]


def _computed_cuts(cond: Condition, profile: Mapping[str, Any]) -> list[tuple[str, int]]:
    """Where the age at onset crosses a rule's threshold, as a cut in the age or in the weeks of pain."""
    if cond.fact != "onset_age":
        return []
    out: list[tuple[str, int]] = []
    age, weeks = profile.get("age"), profile.get("pain_weeks")
    for test in cond.tests:
        values = test.value if isinstance(test.value, tuple) else (test.value,)
        for t in values:
            if isinstance(t, bool) or not isinstance(t, (int, float)):
                continue
            if weeks is not None:  # onset = age - weeks / 52 crosses t as age crosses t + weeks / 52
                out.append(("age", math.floor(t + weeks / 52)))
            if age is not None:  # ... and as weeks cross 52 * (age - t)
                out.append(("pain_weeks", math.ceil(52 * (age - t)) - 1))
    return out


__all__ = ["Miss", "WhatIf", "WhyNot", "candidates", "what_if", "why_not"]
