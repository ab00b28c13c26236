"""What :func:`backcare.recommend` returns.

Modelled on a CDS Hooks card: each recommendation carries a summary, the
source behind it and an indicator of how strong it is, and safety findings
(referral, exclusions, warnings) travel in the same object so that no caller
can show the ranking without them.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs

from ._model import EVIDENCE_LEVELS, EVIDENCE_MEANING, RANKING_MEANING, SUPPORTED_LEVELS, PackInfo
from ._profile import Scalar
from ._text import escape_controls

#: Shown with every result, in the text output and in ``to_dict()``.
DISCLAIMER = (
    "This is information, not medical advice. It does not replace assessment by a qualified "
    "clinician. Get emergency help the same day for numbness around the genitals, back passage or "
    "inner thighs, new trouble passing urine or controlling the bladder or bowels, or numbness or "
    "weakness in both legs or getting worse. See a doctor within days, before any massage, for back "
    "pain with a fever, unexplained weight loss, cancer now or in the past, pain after a major injury "
    "such as a road accident or a fall from height (or after even a minor fall or strain if you have "
    "thin bones or take steroid tablets long term), pain that is constant or worse at night, or new "
    "back pain after the age of 50. See a clinician, too, if the pain is severe or getting worse."
)


class FrozenMapping(Mapping[str, Any]):
    """A read-only, picklable mapping with sorted keys.

    Results are cached and shared between callers, so none of their parts may
    be changed in place; ``MappingProxyType`` would do but cannot be pickled
    back from a worker process.
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] = ()) -> None:  # type: ignore[assignment]
        self._data = {k: tuple(v) if isinstance(v, list) else v for k, v in sorted(dict(data).items())}

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and self._data == dict(other)

    def __hash__(self) -> int:
        return hash(tuple(self._data.items()))

    def __repr__(self) -> str:
        return repr(self._data)

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenMapping, (self._data,))


def _freeze_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return value if isinstance(value, FrozenMapping) else FrozenMapping(value)


@attrs.frozen
class Premise:
    """A fact a rule fired on, with the words a person reads for it.

    ``given`` is true for what the profile says (or backcare computes from
    it, such as the age when the pain began), false for what rules derived.
    """

    #: The fact's name: a profile field, a computed fact (``onset_age``) or a derived fact.
    fact: str
    #: The value it had (``True`` for a fact that simply holds).
    value: Scalar
    #: The premise in words, as results show it ("weeks of pain over 12").
    text: str
    #: True if the profile gave it (or backcare computed it from the profile), false if a rule derived it.
    given: bool


@attrs.frozen
class Step:
    """One rule firing in a chain of reasoning, with its source and evidence."""

    #: The id of the rule that fired.
    rule_id: str
    #: The rule's title.
    title: str
    #: Why the conclusion follows: the rule's ``because``.
    text: str
    #: What the rule concluded, in words ("adds 2 points to Kneading").
    conclusion: str
    #: The facts the rule fired on, in order.
    premises: tuple[Premise, ...]
    #: The id of the source the rule encodes.
    source: str
    #: That source's citation.
    citation: str
    #: The rule's own evidence level (see :ref:`evidence-levels`).
    evidence: str
    #: The passage of the seed document the rule encodes, if it encodes one.
    passage: str | None = None
    #: What the evidence says instead, where it disagrees with the rule.
    caveat: str | None = None
    #: The id of the source behind the caveat.
    caveat_source: str | None = None
    #: That source's citation.
    caveat_citation: str | None = None
    #: No study was found that tested the claim this step encodes.
    untested: bool = False
    #: The rule pack this step's rule comes from, when it is not backcare's default pack.
    pack: str | None = None


@attrs.frozen
class Contribution:
    """What one rule adds to (or takes from) a technique's score.

    ``evidence`` is the weakest level along the chain behind this rule's
    firing: a guideline step resting on an article's claim is only a claim.
    A contribution whose chain is refuted is shown but never counted.
    """

    #: The rule that scored the technique.
    rule_id: str
    #: The points it adds (negative: it counts against the technique).
    weight: float
    #: The weakest evidence level along the chain behind this firing.
    evidence: str
    #: Whether the weight counts in the score (not when the chain is refuted).
    counted: bool


@attrs.frozen
class RankedTechnique:
    """A recommended technique: its score, evidence level and rationale.

    ``score`` adds up the counted contributions; ``score_by_evidence`` splits
    it by the evidence level of each contribution's chain and sums to it.
    ``evidence`` is the weakest level among the chains that raise the score:
    a technique is only as well supported as its weakest supporting link.
    """

    #: The technique's id.
    id: str
    #: Its name, for people.
    name: str
    #: What the therapist does.
    description: str
    #: How firm it is: ``light``, ``moderate``, ``firm`` or ``deep``.
    pressure: str
    #: The counted points the rules gave it (see :ref:`concepts-scoring`).
    score: float
    #: The weakest evidence level among the chains that raise its score.
    evidence: str
    #: The score split by evidence level; the parts add up to ``score``.
    score_by_evidence: Mapping[str, float] = attrs.field(converter=_freeze_mapping)
    #: Each rule's part in the score, counted or not.
    contributions: tuple[Contribution, ...]
    #: The steps behind the technique, derivations first, each rule once.
    rationale: tuple[Step, ...]

    @property
    def supported_score(self) -> float:
        """The part of the score resting on evidence of low quality or better."""
        return round(sum(v for k, v in self.score_by_evidence.items() if k in SUPPORTED_LEVELS), 6)


@attrs.frozen
class NotRecommended:
    """A technique some rules scored but that is not recommended, and why.

    ``reason`` is ``demoted`` when a rule counts against the technique for
    this person (``demoted_by`` names them), else ``no_points`` when its
    counted score is 0 or less.
    """

    #: The technique's id.
    technique: str
    #: Its name, for people.
    name: str
    #: Its counted score.
    score: float
    #: ``demoted`` (a rule counts against it) or ``no_points`` (its score is 0 or less).
    reason: str
    #: The rules that count against it, for ``demoted``.
    demoted_by: tuple[str, ...]
    #: Each rule's part in its score.
    contributions: tuple[Contribution, ...]
    #: The steps behind it.
    rationale: tuple[Step, ...]


@attrs.frozen
class Exclusion:
    """A technique that must not be used, with every rule that says so."""

    #: The technique's id.
    technique: str
    #: Its name, for people.
    name: str
    #: Every safety rule (or referral) that rules it out, as steps.
    reasons: tuple[Step, ...]


@attrs.frozen
class Referral:
    """The person should see a clinician, and how soon.

    ``emergency`` and ``urgent`` referrals withhold every technique; a
    ``routine`` one allows only techniques up to ``max_pressure`` until the
    person has been assessed. ``flags`` are the red flags behind it, given
    or raised by rules; ``triggers`` are the answers in the profile that
    started the chain.
    """

    #: ``emergency`` (the same day), ``urgent`` (within days) or ``routine``.
    urgency: str
    #: What the warning signs may point to, in words.
    suspected: tuple[str, ...]
    #: The red flags behind the referral, given or raised by rules.
    flags: tuple[str, ...]
    #: The answers in the profile that started the chain.
    triggers: tuple[Premise, ...]
    #: What the person should do, in words.
    action: str
    #: For a routine referral, the firmest pressure allowed until the person is assessed.
    max_pressure: str | None
    #: The ids of the sources behind the referral.
    sources: tuple[str, ...]
    #: The rules that made the referral, as steps.
    rationale: tuple[Step, ...]
    #: Every technique is ruled out in this result (by the referral or by other safety rules).
    withheld: bool = False

    @property
    def withholds_techniques(self) -> bool:
        """Whether every technique is withheld until a clinician has assessed the person."""
        return self.withheld or self.urgency in ("emergency", "urgent")

    @property
    def meanwhile(self) -> str:
        """What the referral means for massage until then, in one sentence."""
        if self.withholds_techniques:
            return "Every massage technique is withheld until a clinician has assessed you."
        if self.max_pressure:
            return (f"Until you are assessed, only gentle techniques (no firmer than {self.max_pressure} "
                    "pressure) are listed.")
        return "Massage may go on meanwhile."


@attrs.frozen
class DerivedFact:
    """A fact the rules worked out, with how well its best derivation is supported.

    A fact derived only through the article's claims (``evidence`` claim or
    refuted) is what the article claims about the person, not a finding.
    """

    #: The fact's name (``duration``).
    name: str
    #: Its value (``"chronic"``; ``True`` for a fact that simply holds).
    value: Scalar
    #: The fact in words.
    text: str
    #: The evidence level of its best derivation.
    evidence: str
    #: The rules that derived it.
    rules: tuple[str, ...]


@attrs.frozen
class Provenance:
    """What produced a result: the packs (with digests), the ranking policy, any safety overrides.

    Two results with equal provenance came from the same rules, whatever
    directories the packs were read from.
    """

    #: The packs used, default pack first, as :class:`PackInfo`.
    packs: tuple[PackInfo, ...]
    #: The ranking policy: ``seed`` or ``evidence``.
    ranking: str
    #: The safety content the packs changed (only with ``allow_safety_overrides=True``).
    safety_overrides: tuple[str, ...] = ()


def _drop_internal(attribute: attrs.Attribute[Any], value: Any) -> bool:
    return not attribute.metadata.get("internal", False)


@attrs.frozen
class Recommendation:
    """A ranked, explained list of techniques, with safety findings beside it.

    Equal profiles give equal recommendations, and :meth:`to_json` is the
    same byte for byte. Only techniques with a positive score that no rule
    demotes are in ``techniques``; the rest of those scored are in
    ``not_recommended``, and those safety rules rule out in ``excluded``.
    """

    #: The validated profile, as plain data.
    profile: Mapping[str, Any] = attrs.field(converter=_freeze_mapping)
    #: The recommended techniques, best first.
    techniques: tuple[RankedTechnique, ...]
    #: Techniques some rule scored that are not recommended, and why.
    not_recommended: tuple[NotRecommended, ...]
    #: Techniques that must not be used, with the safety rules that say so.
    excluded: tuple[Exclusion, ...]
    #: ``None``, or the advice to see a clinician and how soon. Show it first.
    referral: Referral | None
    #: Every derived fact, with the evidence of its best derivation.
    derived: tuple[DerivedFact, ...]
    #: The ids of every rule that fired, sorted.
    fired: tuple[str, ...]
    #: Steps that add information rather than score: self-management advice, what research says.
    notes: tuple[Step, ...]
    #: Steps from safety rules that the person must read.
    warnings: tuple[Step, ...]
    #: The packs, ranking policy and safety overrides behind this result.
    provenance: Provenance
    #: The disclaimer, :data:`DISCLAIMER`: show it with every result.
    disclaimer: str = DISCLAIMER
    #: The recommender that made this result, for why_not() and what_if(); never serialised.
    _recommender: Any = attrs.field(default=None, eq=False, repr=False, metadata={"internal": True})
    #: The text of to_json(), once asked for (results are immutable and cached; never serialised).
    _json: str | None = attrs.field(init=False, default=None, eq=False, repr=False, metadata={"internal": True})

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled without the recommender: a worker's result is re-attached by the caller.
        state = {a.name: getattr(self, a.name) for a in attrs.fields(type(self)) if _drop_internal(a, None)}
        return (_unpickle, (state,))

    @property
    def facts(self) -> Mapping[str, tuple[Scalar, ...]]:
        """Every derived fact's values by name, whatever their support (see :attr:`derived`)."""
        out: dict[str, list[Scalar]] = {}
        for d in self.derived:
            out.setdefault(d.name, []).append(d.value)
        return FrozenMapping(out)

    @property
    def safety_overrides(self) -> tuple[str, ...]:
        """Safety content the packs in use changed (only with ``allow_safety_overrides=True``)."""
        return self.provenance.safety_overrides

    def technique_ids(self) -> list[str]:
        """The recommended technique ids, best first."""
        return [t.id for t in self.techniques]

    def why_not(self, technique: str) -> Any:
        """Why a technique is not recommended: excluded, demoted, or which rules nearly supported it.

        Returns a :class:`~backcare.WhyNot`. An unknown technique id raises
        :class:`~backcare.UnknownIdError` with a did-you-mean.
        """
        from ._explore import why_not

        return why_not(self, technique)

    def what_if(self) -> Any:
        """The single-field changes that would change the top technique or the referral.

        Returns a tuple of :class:`~backcare.WhatIf`, evaluated through the
        same recommender; candidate values come from the rules' own
        conditions, so no more evaluations run than there are candidates.
        """
        from ._explore import what_if

        return what_if(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe data: dicts, lists, strings, numbers, booleans, None."""
        return _plain(self)  # type: ignore[no-any-return]

    def to_json(self) -> str:
        """The :meth:`to_dict` form as canonical, strict JSON text.

        That is ``json.dumps(result.to_dict(), sort_keys=True, ensure_ascii=False,
        indent=2, allow_nan=False)``, written by ``_json`` several times faster,
        and kept: a cached result asked again costs nothing.
        """
        if self._json is None:
            from ._json import dumps

            object.__setattr__(self, "_json", dumps(self))
        assert self._json is not None
        return self._json

    def explain(self) -> str:
        """A readable account of the result, for a person rather than a program.

        Control characters in any text (a rule pack's, a profile's) are shown
        as escapes such as ``\\x1b``: printed to a terminal, the account can
        never move the cursor or clear the screen.
        """
        return _Explainer(self).render()


def _unpickle(state: dict[str, Any]) -> Recommendation:
    return Recommendation(**state)


# ---------------------------------------------------------------------------
# The text of explain(): words for a patient and a therapist.

_WIDTH = 79

_LEVEL_WORDS = {
    "guideline": "a guideline",
    "trial": "a trial",
    "low": "low-quality evidence",
    "claim": "the article's claims",
    "refuted": "claims the evidence contradicts",
}


def clean(text: str) -> str:
    """Text with control characters shown as escapes, so nothing can rewrite the terminal."""
    return escape_controls(text)


def _number(x: float) -> str:
    return f"{x:g}"


def _points(n: float) -> str:
    return f"{_number(abs(n))} point{'' if abs(n) == 1 else 's'}"



def wrap(text: str, indent: str = "", sub: str | None = None) -> list[str]:
    """``text`` as lines of at most 79 characters, for a terminal; a word longer than that is never split."""
    return textwrap.wrap(clean(text), _WIDTH, initial_indent=indent,
                         subsequent_indent=sub if sub is not None else indent,
                         break_long_words=False, break_on_hyphens=False)


def claim_mark(level: str) -> str:
    """What goes before a rule's title at this evidence level, so no text states a claim as a fact."""
    return {"claim": "Claim: ", "refuted": "Refuted claim: "}.get(level, "")


def step_heading(s: Step) -> str:
    """A step's first line: a claim marked as one, then the rule's title, conclusion and id.

    One wording for ``explain()`` and ``why_not()``, so neither states an
    article's claim, or a refuted one, as a fact.
    """
    ref = s.rule_id if s.pack is None else f"{s.rule_id}, from the rule pack {s.pack!r}"
    return f"{claim_mark(s.evidence)}{s.title}: {s.conclusion} [{ref}]"


def counted_by_evidence(contributions: Iterable[Contribution]) -> dict[str, float]:
    """The counted points of ``contributions`` per evidence level (a result's ``score_by_evidence``)."""
    by_level: dict[str, float] = {}
    for c in contributions:
        if c.counted:
            by_level[c.evidence] = by_level.get(c.evidence, 0.0) + c.weight
    return {k: round(v, 6) for k, v in by_level.items()}


def points_breakdown(by_level: Mapping[str, float], contributions: tuple[Contribution, ...]) -> str:
    """Where a score's points come from, by evidence level, and the points never counted."""
    parts = [f"{_points(v)} from {_LEVEL_WORDS.get(k, k)}" for k, v in
             sorted(by_level.items(), key=lambda kv: EVIDENCE_LEVELS.index(kv[0])
                    if kv[0] in EVIDENCE_LEVELS else len(EVIDENCE_LEVELS))
             if v]
    text = "Points: " + (", ".join(parts) if parts else "none") + "."
    ignored = [c for c in contributions if not c.counted]
    if ignored:
        total = sum(c.weight for c in ignored)
        text += f" Not counted: {_points(total)} resting on claims the evidence contradicts."
    return text

class _Explainer:
    def __init__(self, result: Recommendation) -> None:
        self.r = result
        self.out: list[str] = []

    def line(self, text: str = "", indent: str = "", sub: str | None = None) -> None:
        if not text:
            self.out.append("")
            return
        self.out += wrap(text, indent, sub)

    def gap(self) -> None:
        if self.out and self.out[-1]:
            self.out.append("")

    def render(self) -> str:
        r = self.r
        self.out = ["backcare: massage techniques for this back-pain profile", "=" * 56, ""]
        if r.safety_overrides:
            self.line("WARNING: the rule packs in use changed backcare's safety rules:")
            for o in r.safety_overrides:
                self.line(f"- {o}", "  ", "    ")
            self.gap()
        self.referral()
        urgent = r.referral is not None and r.referral.withholds_techniques
        # With a referral that withholds everything, what other rule packs add is set apart:
        # nothing a pack says may read as part of backcare's referral.
        own = [s for s in (*r.warnings, *r.notes) if s.pack is None or not urgent]
        self.steps("Warnings", tuple(s for s in r.warnings if s in own))
        if urgent and len(own) < len(r.warnings) + len(r.notes):
            self.steps("Other rule packs add (they do not change the referral above)",
                       tuple(s for s in (*r.warnings, *r.notes) if s not in own))
        self.gap()
        self.techniques()
        self.not_recommended()
        self.excluded()
        self.steps("Notes", tuple(s for s in r.notes if s in own))
        self.derived()
        self.provenance()
        self.sources()
        self.gap()
        self.line(r.disclaimer)
        return "\n".join(self.out)

    def steps(self, title: str, steps: tuple[Step, ...]) -> None:
        if steps:
            self.gap()
            self.line(f"{title}:")
            for s in steps:
                self.step(s, "  ")

    def step(self, s: Step, indent: str) -> None:
        self.line(f"- {step_heading(s)}", indent, indent + "  ")
        body = indent + "  "
        text = s.text
        if s.evidence == "claim":
            text = f"The article claims: {text}"
        elif s.evidence == "refuted":
            text = f"The article claims, but research found otherwise: {text}"
        self.line(f"{text} [{s.source}; evidence: {s.evidence}]", body)
        if s.premises:
            self.line("Because of: " + "; ".join(p.text for p in s.premises) + ".", body)
        if s.untested:
            self.line("No trial was found that tested this.", body)
        if s.caveat:
            cite = f" [{s.caveat_source}]" if s.caveat_source else ""
            self.line(f"But: {s.caveat}{cite}", body)

    def referral(self) -> None:
        ref = self.r.referral
        if ref is None:
            return
        heading = {"emergency": "GET EMERGENCY HELP", "urgent": "SEE A DOCTOR URGENTLY",
                   "routine": "SEE A CLINICIAN"}.get(ref.urgency, "SEE A CLINICIAN")
        self.line(f"{heading} ({ref.urgency} referral): {ref.action}", "", "  ")
        self.line("What it may be: " + ", ".join(ref.suspected) + ".", "  ")
        if ref.triggers:
            self.line("From your answers: " + "; ".join(p.text for p in ref.triggers) + ".", "  ")
        self.line(ref.meanwhile, "  ")
        self.line("Why:", "  ")
        for s in ref.rationale:
            self.step(s, "  ")

    def techniques(self) -> None:
        r = self.r
        if not r.techniques:
            self.line("No technique is recommended. " + self._why_none())
            return
        policy = r.provenance.ranking
        self.line(f"Recommended techniques, best first (ranked {RANKING_MEANING.get(policy, policy)}).")
        self.line("A score adds up the points the reasons below give a technique. It only orders the "
                  "techniques for this profile; it does not measure how well a technique works.")
        for i, t in enumerate(r.techniques, 1):
            self.line("")
            self.line(f"{i}. {t.name}: score {_number(t.score)}, evidence: {t.evidence} "
                      f"({EVIDENCE_MEANING.get(t.evidence, t.evidence)})", " " if i < 10 else "", "    ")
            self.line(t.description, "    ")
            self.line(points_breakdown(t.score_by_evidence, t.contributions), "    ")
            self.line("Why:", "    ")
            for s in t.rationale:
                self.step(s, "    ")

    def _why_none(self) -> str:
        r = self.r
        if r.referral and r.referral.withholds_techniques:
            return "Every technique is withheld until a clinician has assessed you (see above)."
        if r.excluded and not r.not_recommended:
            return "Each technique the rules point to is ruled out for a reason listed under Excluded."
        if r.excluded or r.not_recommended:
            return "See Not recommended and Excluded below."
        extra = " Read the warnings above first." if r.warnings else ""
        return ("Nothing in this profile points to a particular massage technique; saying more about the "
                "pain (how long, how strong, stiffness, tight bands) gives a fuller answer." + extra)

    def not_recommended(self) -> None:
        if not self.r.not_recommended:
            return
        self.gap()
        self.line("Not recommended:")
        for n in self.r.not_recommended:
            if n.reason == "demoted":
                titles = {s.rule_id: s.title for s in n.rationale}
                why = "; ".join(f"{titles.get(rid, rid)} [{rid}]" for rid in n.demoted_by)
                self.line(f"- {n.name}: counted against it for this profile by: {why}.", "  ", "    ")
            else:
                self.line(f"- {n.name}: its score is {_number(n.score)}, so nothing here speaks for it.",
                          "  ", "    ")

    def excluded(self) -> None:
        r = self.r
        if not r.excluded:
            return
        self.gap()
        self.line("Excluded:")
        referral_rules = {s.rule_id for s in r.referral.rationale} if r.referral else set()
        groups: dict[tuple[Step, ...], list[str]] = {}
        for e in r.excluded:
            groups.setdefault(e.reasons, []).append(e.name)
        withheld = r.referral is not None and r.referral.withholds_techniques
        for reasons, names in groups.items():
            label = ", ".join(names)
            if reasons and all(s.rule_id in referral_rules for s in reasons):
                label = f"Every technique ({label})" if withheld and len(groups) == 1 else label
                self.line(f"- {label}: withheld because of the referral above.", "  ", "    ")
                continue
            self.line(f"- {label}:", "  ", "    ")
            for s in reasons:
                self.step(s, "    ")

    def derived(self) -> None:
        found = [d for d in self.r.derived if d.evidence in SUPPORTED_LEVELS]
        claimed = [d for d in self.r.derived if d.evidence == "claim"]
        refuted = [d for d in self.r.derived if d.evidence == "refuted"]
        for title, facts in (("What backcare worked out from your answers", found),
                             ("What the article claims about you, without good evidence", claimed),
                             ("What the article claims, against the evidence", refuted)):
            if facts:
                self.gap()
                self.line(title + ":")
                for d in facts:
                    self.line(f"- {d.text} [{', '.join(d.rules)}]", "  ", "    ")

    def provenance(self) -> None:
        p = self.r.provenance
        self.gap()
        packs = "; ".join(
            f"{pack.name}{' ' + pack.version if pack.version else ''} (sha256 {pack.digest[:12]})" for pack in p.packs
        )
        self.line(f"Rules used: {packs}. Ranking: {p.ranking}.")

    def sources(self) -> None:
        cited: dict[str, str] = {}
        r = self.r
        steps = [*r.notes, *r.warnings]
        steps += [s for t in r.techniques for s in t.rationale]
        steps += [s for n in r.not_recommended for s in n.rationale]
        steps += [s for e in r.excluded for s in e.reasons]
        if r.referral:
            steps += r.referral.rationale
        for s in steps:
            cited[s.source] = s.citation
            if s.caveat_source and s.caveat_citation:
                cited[s.caveat_source] = s.caveat_citation
        if not cited:
            return
        self.gap()
        self.line("Sources:")
        for key, citation in sorted(cited.items()):
            self.line(f"[{key}] {citation}", "", "    ")


def _plain(value: Any) -> Any:
    if attrs.has(type(value)):
        return {a.name: _plain(getattr(value, a.name)) for a in attrs.fields(type(value))
                if _drop_internal(a, None)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value
