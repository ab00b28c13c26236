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


class _Tables:
    """What :func:`build` needs from a rulebase that no trace changes, computed once per rulebase.

    Steps are immutable and depend only on the rule and its premises, so they
    are shared between results (a bounded memo).
    """

    MAX_STEPS = 8192

    def __init__(self, rb: Rulebase) -> None:
        self.rb = rb
        self.derives = {r.id: derived_facts(r) for r in rb.rules}
        self.excludes = {r.id: excluded_by(r, rb) for r in rb.rules}
        self.steps: dict[tuple[str, tuple[Fact, ...]], Step] = {}

    def step(self, rule_id: str, premises: tuple[Fact, ...]) -> Step:
        key = (rule_id, premises)
        found = self.steps.get(key)
        if found is None:
            rule = self.rb.by_id[rule_id]
            source = self.rb.sources[rule.source]
            caveat_citation = self.rb.sources[rule.caveat_source].citation if rule.caveat_source else None
            found = Step(
                rule_id=rule.id,
                title=rule.title,
                text=rule.because,
                conclusion=rule.then.describe(),
                premises=tuple(_fact_text(f) for f in premises),
                source=rule.source,
                citation=source.citation,
                evidence=rule.evidence,
                passage=source.passage,
                caveat=rule.caveat,
                caveat_source=rule.caveat_source,
                caveat_citation=caveat_citation,
            )
            if len(self.steps) >= self.MAX_STEPS:
                self.steps.clear()
            self.steps[key] = found
        return found


class _Chain:
    """Derivation chains over one trace: which firings produced which facts."""

    def __init__(self, rb: Rulebase, trace: Trace, tables: _Tables | None = None) -> None:
        self.rb = rb
        self.tables = tables or rb.memo("reasoning", _Tables)
        derives = self.tables.derives
        self.premises: dict[str, set[Fact]] = {}
        self.derivers: dict[Fact, set[str]] = {}
        for firing in trace.firings:
            self.premises.setdefault(firing.rule_id, set()).update(firing.premises)
            for fact in derives[firing.rule_id]:
                self.derivers.setdefault(fact, set()).add(firing.rule_id)
        self.given = set(trace.given)
        self._sorted: dict[str, tuple[Fact, ...]] = {}

    def sorted_premises(self, rule_id: str) -> tuple[Fact, ...]:
        found = self._sorted.get(rule_id)
        if found is None:
            found = self._sorted[rule_id] = tuple(sorted(self.premises[rule_id], key=_key))
        return found

    def step(self, rule_id: str) -> Step:
        return self.tables.step(rule_id, self.sorted_premises(rule_id))

    def explain(self, rule_ids: Iterable[str]) -> tuple[Step, ...]:
        """The steps behind ``rule_ids``: premises' derivations first, each rule once."""
        order: list[str] = []
        seen: set[str] = set()

        def visit(rule_id: str) -> None:
            if rule_id in seen:
                return
            seen.add(rule_id)
            for fact in self.sorted_premises(rule_id):
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
    tables = rb.memo("reasoning", _Tables)
    chain = _Chain(rb, trace, tables)
    fired = sorted(chain.premises)
    rules = [rb.by_id[r] for r in fired]

    scores: dict[str, list[tuple[float, str]]] = {}
    for rule in rules:
        for tech, weight in rule.then.score:
            scores.setdefault(tech, []).append((weight, rule.id))

    exclusions: dict[str, list[str]] = {}
    for rule in rules:
        for tech in tables.excludes[rule.id]:
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
        technique = rb.techniques[tech_id]
        total = round(sum(w for w, _ in sorted(contributions)), 6)
        positive = [rid for w, rid in contributions if w > 0] or [rid for _, rid in contributions]
        evidence = min((rb.by_id[r].evidence for r in positive), key=EVIDENCE_LEVELS.index)
        by_weight = [rid for _, rid in sorted(contributions, key=lambda c: (-c[0], c[1]))]
        ranked.append(
            RankedTechnique(technique.id, technique.name, technique.description, total, evidence,
                            chain.explain(by_weight))
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
