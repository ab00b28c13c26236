"""From a trace of fired rules to a :class:`Recommendation`.

Scores are summed, safety is applied after scoring (so no weight, however
large, brings back an excluded technique), and each technique's rationale is
rebuilt as the chain of derivations behind it. Everything here is a pure
function of the rulebase and the trace, so the engine and the reference
evaluator produce identical results from identical traces.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ._engine import Fact, Trace, derived_facts
from ._model import EVIDENCE_LEVELS, PRESSURES, URGENCIES, Rule, Rulebase
from ._result import Exclusion, RankedTechnique, Recommendation, Referral, Step


def _fact_text(fact: Fact) -> str:
    name, value = fact
    if value is True:
        return name
    if isinstance(value, bool):
        return f"{name} = false"
    return f"{name} = {value}"


class _Chain:
    """Derivation chains over one trace: which firings produced which facts."""

    def __init__(self, rb: Rulebase, trace: Trace) -> None:
        self.rb = rb
        self.premises: dict[str, set[Fact]] = {}
        self.derivers: dict[Fact, set[str]] = {}
        for firing in trace.firings:
            self.premises.setdefault(firing.rule_id, set()).update(firing.premises)
            for fact in derived_facts(rb.by_id[firing.rule_id]):
                self.derivers.setdefault(fact, set()).add(firing.rule_id)
        self.given = set(trace.given)
        self._steps: dict[str, Step] = {}

    def step(self, rule_id: str) -> Step:
        if rule_id not in self._steps:
            rule = self.rb.by_id[rule_id]
            source = self.rb.sources[rule.source]
            caveat_citation = self.rb.sources[rule.caveat_source].citation if rule.caveat_source else None
            self._steps[rule_id] = Step(
                rule_id=rule.id,
                title=rule.title,
                text=rule.because,
                conclusion=rule.then.describe(),
                premises=tuple(_fact_text(f) for f in sorted(self.premises[rule_id], key=_key)),
                source=rule.source,
                citation=source.citation,
                evidence=rule.evidence,
                passage=source.passage,
                caveat=rule.caveat,
                caveat_source=rule.caveat_source,
                caveat_citation=caveat_citation,
            )
        return self._steps[rule_id]

    def explain(self, rule_ids: Iterable[str]) -> tuple[Step, ...]:
        """The steps behind ``rule_ids``: premises' derivations first, each rule once."""
        order: list[str] = []
        seen: set[str] = set()

        def visit(rule_id: str) -> None:
            if rule_id in seen:
                return
            seen.add(rule_id)
            for fact in sorted(self.premises[rule_id], key=_key):
                if fact in self.given:
                    continue
                for deriver in sorted(self.derivers.get(fact, ())):
                    visit(deriver)
            order.append(rule_id)

        for rule_id in rule_ids:
            visit(rule_id)
        return tuple(self.step(r) for r in order)


def _key(fact: Fact) -> tuple[str, str, str]:
    return (fact[0], type(fact[1]).__name__, repr(fact[1]))


def excluded_by(rule: Rule, rb: Rulebase) -> list[str]:
    """The technique ids a rule's exclude conclusion rules out."""
    ex = rule.then.exclude
    if ex is None:
        return []
    out = set()
    for tech in rb.techniques.values():
        if (
            ex.all
            or tech.id in ex.techniques
            or (ex.only is not None and tech.id not in ex.only)
            or (ex.max_pressure and PRESSURES.index(tech.pressure) > PRESSURES.index(ex.max_pressure))
        ):
            out.add(tech.id)
    return sorted(out)


def build(rb: Rulebase, profile: Mapping[str, Any], trace: Trace) -> Recommendation:
    """Assemble the recommendation for one profile from its trace."""
    chain = _Chain(rb, trace)
    fired = sorted(chain.premises)
    rules = [rb.by_id[r] for r in fired]

    scores: dict[str, list[tuple[float, str]]] = {}
    for rule in rules:
        for tech, weight in rule.then.score:
            scores.setdefault(tech, []).append((weight, rule.id))

    exclusions: dict[str, list[str]] = {}
    for rule in rules:
        for tech in excluded_by(rule, rb):
            exclusions.setdefault(tech, []).append(rule.id)

    referral = _referral(rb, chain, [r for r in rules if r.then.refer])
    if referral is not None and referral.withholds_techniques:
        refer_ids = [s.rule_id for s in referral.rationale if rb.by_id[s.rule_id].then.refer]
        for tech in scores:
            exclusions.setdefault(tech, []).extend(refer_ids)

    ranked = []
    for tech_id, contributions in scores.items():
        if tech_id in exclusions:
            continue
        tech = rb.techniques[tech_id]
        total = round(sum(w for w, _ in sorted(contributions)), 6)
        positive = [rid for w, rid in contributions if w > 0] or [rid for _, rid in contributions]
        evidence = min((rb.by_id[r].evidence for r in positive), key=EVIDENCE_LEVELS.index)
        by_weight = [rid for _, rid in sorted(contributions, key=lambda c: (-c[0], c[1]))]
        ranked.append(
            RankedTechnique(tech.id, tech.name, tech.description, total, evidence, chain.explain(by_weight))
        )
    ranked.sort(key=lambda t: (-t.score, t.id))

    excluded = tuple(
        Exclusion(tech, rb.techniques[tech].name, chain.explain(sorted(set(ids))))
        for tech, ids in sorted(exclusions.items())
    )
    facts: dict[str, list[Any]] = {}
    for name, value in trace.derived:
        facts.setdefault(name, []).append(value)
    return Recommendation(
        profile=profile,
        techniques=tuple(ranked),
        excluded=excluded,
        referral=referral,
        facts={k: tuple(v) for k, v in facts.items()},
        fired=tuple(fired),
        notes=tuple(chain.step(r.id) for r in rules if r.then.note),
        warnings=tuple(chain.step(r.id) for r in rules if r.then.warn),
        safety_overrides=rb.safety_overrides,
    )


def _referral(rb: Rulebase, chain: _Chain, refer_rules: list[Rule]) -> Referral | None:
    if not refer_rules:
        return None
    urgency = min((r.then.refer.urgency for r in refer_rules if r.then.refer), key=URGENCIES.index)
    rationale = chain.explain(r.id for r in refer_rules)
    triggers = sorted(
        {str(v) for r in refer_rules for n, v in chain.premises[r.id] if n in ("red_flags", "conditions")}
    )
    return Referral(
        urgency=urgency,
        suspected=tuple(sorted({r.then.refer.suspected for r in refer_rules if r.then.refer})),
        triggers=tuple(triggers),
        action=rb.urgency_actions.get(urgency, "See a clinician."),
        sources=tuple(sorted({s.source for s in rationale})),
        rationale=rationale,
    )
