"""From a trace of fired rules to a :class:`Recommendation`.

Scores are summed, safety is applied after scoring (so no weight, however
large, brings back an excluded technique), and each technique's rationale is
rebuilt as the chain of derivations behind it. A chain is as strong as its
weakest step: a guideline rule firing on a fact only the article claims is
a claim, and a chain resting on a refuted claim adds nothing. Everything
here is a pure function of the rulebase and the trace, so the engine and
the reference evaluator produce identical results from identical traces.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from ._engine import Fact, FactKey, Trace, derived_facts, fact_key
from ._model import (
    EVIDENCE_LEVELS,
    PRESSURES,
    REFUTED,
    SUPPORTED_LEVELS,
    URGENCIES,
    Condition,
    Rule,
    Rulebase,
)
from ._profile import COMPUTED_FACTS, FieldSpec
from ._result import (
    Contribution,
    DerivedFact,
    Exclusion,
    NotRecommended,
    Premise,
    Provenance,
    RankedTechnique,
    Recommendation,
    Referral,
    Step,
    counted_by_evidence,
)

_RANK = {level: i for i, level in enumerate(EVIDENCE_LEVELS)}


def weakest(levels: Iterable[str]) -> str:
    """The weakest of some evidence levels (``refuted`` is the weakest of all)."""
    return max(levels, key=_RANK.__getitem__)


def strongest(levels: Iterable[str]) -> str:
    return min(levels, key=_RANK.__getitem__)


def _number(x: float) -> str:
    return f"{x:g}"


class Words:
    """Rule conclusions and facts in words a person reads, computed once per rulebase.

    Results never show a raw field name, technique id or catalogue id in a
    sentence: fields by their label, techniques by name, red flags and
    conditions by description.
    """

    def __init__(self, rb: Rulebase) -> None:
        self.rb = rb
        self.specs: dict[str, FieldSpec] = {**COMPUTED_FACTS, **rb.fields}
        self.items: dict[str, dict[str, str]] = {
            "red_flags": {f.id: f.description for f in rb.red_flags.values()},
            "conditions": {c.id: c.description for c in rb.contraindications.values()},
        }
        self.items["away_from_back"] = self.items["conditions"]

    def name(self, fact: str) -> str:
        spec = self.specs.get(fact)
        if spec is not None:
            return spec.display
        info = self.rb.facts.get(fact)
        return info.label if info is not None else fact.replace("_", " ")

    def item(self, field: str, value: object) -> str:
        text = self.items.get(field, {}).get(str(value))
        return text if text is not None else str(value).replace("_", " ")

    def value(self, fact: str, value: object) -> str:
        if isinstance(value, bool):
            return "yes" if value else "no"
        spec = self.specs.get(fact)
        if spec is not None and spec.type in ("string",) and isinstance(value, str):
            return value.replace("_", " ")
        if isinstance(value, float):
            return f"{round(value, 1):g}"  # an age at onset of 84.88 reads as 84.9
        return str(value).replace("_", " ") if isinstance(value, str) else str(value)

    def fact(self, fact: str, value: object) -> str:
        """One premise or derived fact in words."""
        if ":" in fact:  # an input test: see _engine.condition_fact
            field, op = fact.split(":", 1)
            if op == "lacks":
                return f"{self.item(field, value)} is not listed under {self.name(field)}"
            return f"{self.name(field)}: {'given' if value else 'not given'}"
        spec = self.specs.get(fact)
        if spec is not None and spec.type == "list":
            kind = {"red_flags": "warning sign", "conditions": "condition",
                    "away_from_back": "away from the back"}.get(fact, self.name(fact))
            return f"{kind}: {self.item(fact, value)}"
        if value is True and (spec is None or spec.type == "bool"):  # a fact that simply holds
            return self.name(fact)
        return f"{self.name(fact)}: {self.value(fact, value)}"

    def condition(self, cond: Condition) -> str:
        """A rule condition in words, for what a profile would need."""
        parts = []
        for test in cond.tests:
            if test.op in ("contains", "lacks", "given") or (test.op == "eq" and isinstance(test.value, bool)):
                fact = f"{cond.fact}:{test.op}" if test.op in ("lacks", "given") else cond.fact
                parts.append(self.fact(fact, test.value))
            elif test.op == "in":
                assert isinstance(test.value, tuple)
                parts.append(f"{self.name(cond.fact)} one of "
                             + ", ".join(self.value(cond.fact, v) for v in test.value))
            else:
                symbol = {"eq": "=", "ne": "is not", "gt": "over", "ge": "at least", "lt": "under",
                          "le": "at most"}[test.op]
                parts.append(f"{self.name(cond.fact)} {symbol} {self.value(cond.fact, test.value)}")
        return " and ".join(parts)

    def techniques(self, ids: Iterable[str]) -> str:
        names = [self.rb.techniques[t].name if t in self.rb.techniques else t for t in ids]
        return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]

    def conclusion(self, rule: Rule) -> str:
        then = rule.then
        parts: list[str] = []
        for fact, value in then.derive:
            parts.append(f"works out: {self.fact(fact, value)}")
        for tech, weight in then.score:
            name = self.techniques([tech])
            if rule.evidence == REFUTED:  # never counted: say so where the points are named
                parts.append(f"would give {_number(weight)} point{'' if abs(weight) == 1 else 's'} to {name}, "
                             "never counted")
            elif weight >= 0:
                parts.append(f"adds {_number(weight)} point{'' if weight == 1 else 's'} to {name}")
            else:
                parts.append(f"counts {_number(-weight)} point{'' if weight == -1 else 's'} against {name}")
        for flag in then.flag:
            parts.append(f"raises the warning sign: {self.item('red_flags', flag)}")
        for implied in then.condition:
            parts.append(f"treats it as: {self.item('conditions', implied)}")
        ex = then.exclude
        if ex is not None:
            if ex.all:
                parts.append("rules out every technique")
            else:
                if ex.techniques:
                    parts.append(f"rules out {self.techniques(ex.techniques)}")
                if ex.max_pressure:
                    parts.append(f"rules out techniques firmer than {ex.max_pressure} pressure")
                if ex.only is not None:
                    parts.append(f"rules out every technique but {self.techniques(ex.only)}")
        if then.refer is not None:
            parts.append(f"{then.refer.urgency} referral: possible {then.refer.suspected}")
        if then.note:
            parts.append(then.note)
        if then.warn:
            parts.append(then.warn)
        return "; ".join(parts)


def words(rb: Rulebase) -> Words:
    """The rulebase's :class:`Words`, built once per rulebase."""
    return rb.memo("reasoning", _Tables).words


class _Tables:
    """What :func:`build` needs from a rulebase that no trace changes, computed once per rulebase.

    Steps are immutable and depend only on the rule and its premises, so they
    are shared between results (a bounded memo).
    """

    MAX_STEPS = 8192

    def __init__(self, rb: Rulebase) -> None:
        self.rb = rb
        self.words = Words(rb)
        self.derives = {r.id: derived_facts(r) for r in rb.rules}
        self.excludes = {r.id: excluded_by(r, rb) for r in rb.rules}
        self.conclusions = {r.id: self.words.conclusion(r) for r in rb.rules}
        #: Each rule's evidence level as its place in EVIDENCE_LEVELS (higher is weaker).
        self.rank = {r.id: _RANK[r.evidence] for r in rb.rules}
        #: Per rule, what build() asks of it: its scores, the techniques it excludes, and whether it refers,
        #: notes or warns.
        self.parts = {r.id: (r.then.score, self.excludes[r.id], r.then.refer is not None, bool(r.then.note),
                             bool(r.then.warn)) for r in rb.rules}
        # Which pack each rule comes from, for rules not in the default pack: a reader must be
        # able to tell backcare's own words from a pack's.
        extra = {info.source: info.name for info in rb.packs if not info.default}
        self.packs = {r.id: extra[r.origin.pack] for r in rb.rules
                      if r.origin is not None and r.origin.pack in extra}
        # Keyed by fact_key, not by the facts: 1 == 1.0 == True and 0.0 == -0.0 in Python, but a
        # result shows the value it was given.
        self.steps: dict[tuple[str, tuple[FactKey, ...], tuple[bool, ...]], Step] = {}
        self.texts: dict[FactKey, str] = {}

    def text(self, fact: Fact) -> str:
        """A fact in words, memoised (bounded like the steps)."""
        key = fact_key(fact)
        found = self.texts.get(key)
        if found is None:
            if len(self.texts) >= self.MAX_STEPS:
                self.texts.clear()
            found = self.texts[key] = self.words.fact(*fact)
        return found

    def step(self, rule_id: str, premises: tuple[Fact, ...], given: frozenset[Fact]) -> Step:
        if len(premises) == 1:  # most rules: one condition
            key: tuple[Any, ...] = (rule_id, fact_key(premises[0]), premises[0] in given)
        else:
            key = (rule_id, tuple(map(fact_key, premises)), tuple(map(given.__contains__, premises)))
        found = self.steps.get(key)
        if found is None:
            rule = self.rb.by_id[rule_id]
            source = self.rb.sources[rule.source]
            caveat_citation = self.rb.sources[rule.caveat_source].citation if rule.caveat_source else None
            found = Step(
                rule_id=rule.id,
                title=rule.title,
                text=rule.because,
                conclusion=self.conclusions[rule.id],
                premises=tuple(Premise(n, v, self.text((n, v)), (n, v) in given) for n, v in premises),
                source=rule.source,
                citation=source.citation,
                evidence=rule.evidence,
                passage=source.passage,
                caveat=rule.caveat,
                caveat_source=rule.caveat_source,
                caveat_citation=caveat_citation,
                untested=rule.untested,
                pack=self.packs.get(rule.id),
            )
            if len(self.steps) >= self.MAX_STEPS:
                self.steps.clear()
            self.steps[key] = found
        return found


def fact_text(rb: Rulebase) -> Callable[[Fact], str]:
    """A fact in the words results give it, memoised per rulebase (shared with :func:`build`)."""
    return rb.memo("reasoning", _Tables).text


class _Chain:
    """Derivation chains over one trace: which firings produced which facts.

    Every walk is remembered for the length of one build: a technique's
    rationale, its evidence level, the exclusions and the derived facts all
    ask for the same few rules' chains, and most rules fire on given facts
    alone, whose chain is the rule itself.
    """

    __slots__ = ("tables", "premises", "fired", "derivers", "given", "_behind", "_levels", "_steps",
                 "_explained")

    def __init__(self, rb: Rulebase, trace: Trace, tables: _Tables | None = None) -> None:
        self.tables = tables = tables or rb.memo("reasoning", _Tables)
        premises: dict[str, tuple[Fact, ...]] = {}
        for firing in trace.firings:
            rule_id = firing.rule_id
            found = premises.get(rule_id)
            # A rule that fired more than once has the union of its firings' premises.
            premises[rule_id] = firing.premises if found is None else (*found, *firing.premises)
        for rule_id, facts in premises.items():
            if len(facts) > 1:  # sorted, each once (most rules have one condition: nothing to do)
                premises[rule_id] = tuple(sorted(set(facts), key=_key))
        self.premises = premises
        #: The ids of the rules that fired, sorted.
        self.fired: list[str] = sorted(premises)
        derives = tables.derives
        derivers: dict[Fact, list[str]] = {}
        for rule_id in self.fired:  # so each fact's derivers are in id order
            for fact in derives[rule_id]:
                found_rules = derivers.get(fact)
                if found_rules is None:
                    derivers[fact] = [rule_id]
                else:
                    found_rules.append(rule_id)
        self.derivers = derivers
        self.given = frozenset(trace.given)
        self._behind: dict[str, tuple[str, ...]] = {}
        self._levels: dict[str, str] = {}
        self._steps: dict[str, Step] = {}
        self._explained: dict[tuple[str, ...], tuple[Step, ...]] = {}

    def step(self, rule_id: str) -> Step:
        found = self._steps.get(rule_id)  # a rule's step is asked for once per rationale it is in
        if found is None:
            found = self._steps[rule_id] = self.tables.step(rule_id, self.premises[rule_id], self.given)
        return found

    def behind(self, rule_id: str) -> tuple[str, ...]:
        """The rules behind one rule, itself last: premises' derivations first (post-order), each once.

        That is one depth-first walk from the rule through the derivers of
        its premises that the profile did not give, in the order of its
        (sorted) premises and of the derivers' ids. Derivations never cycle
        (the loader refuses cycles), so a rule met before in a walk has its
        whole chain met before it, and the walk is the derivers' own walks
        joined, less what was met already.
        """
        found = self._behind.get(rule_id)
        if found is None:
            given = self.given
            derivers = self.derivers
            before: list[str] = []
            for fact in self.premises[rule_id]:
                if fact not in given:
                    before += derivers.get(fact, ())
            if not before:  # the commonest case: a rule firing on what the profile gave
                found = (rule_id,)
            else:
                order: list[str] = []
                seen = {rule_id}
                for deriver in before:
                    for rid in self.behind(deriver):
                        if rid not in seen:
                            seen.add(rid)
                            order.append(rid)
                order.append(rule_id)
                found = tuple(order)
            self._behind[rule_id] = found
        return found

    def order(self, rule_ids: Iterable[str]) -> list[str]:
        """The rules behind ``rule_ids``, each once, in the order one depth-first walk would meet them."""
        order: list[str] = []
        seen: set[str] = set()
        for rule_id in rule_ids:
            for rid in self.behind(rule_id):
                if rid not in seen:
                    seen.add(rid)
                    order.append(rid)
        return order

    def explain(self, rule_ids: Iterable[str]) -> tuple[Step, ...]:
        key = tuple(rule_ids)
        found = self._explained.get(key)
        if found is None:
            step = self.step
            found = self._explained[key] = tuple(step(r) for r in self.order(key))
        return found

    def level(self, rule_id: str) -> str:
        """The weakest evidence level along everything behind one rule's firings."""
        found = self._levels.get(rule_id)
        if found is None:
            rank = self.tables.rank
            found = self._levels[rule_id] = EVIDENCE_LEVELS[max(rank[r] for r in self.behind(rule_id))]
        return found

    def roots(self, rule_ids: Iterable[str]) -> list[Fact]:
        """The given facts at the start of the chains behind ``rule_ids``."""
        out: set[Fact] = set()
        for rid in self.order(rule_ids):
            out.update(f for f in self.premises[rid] if f in self.given)
        return sorted(out, key=_key)


def _key(fact: Fact) -> tuple[str, str, str]:
    return (fact[0], type(fact[1]).__name__, repr(fact[1]))


def excluded_by(rule: Rule, rb: Rulebase) -> list[str]:
    """The technique ids a rule's exclude conclusion rules out."""
    ex = rule.then.exclude
    if ex is None:
        return []
    return sorted(
        tech.id for tech in rb.techniques.values()
        if ex.all
        or tech.id in ex.techniques
        or (ex.only is not None and tech.id not in ex.only)
        or (ex.max_pressure and PRESSURES.index(tech.pressure) > PRESSURES.index(ex.max_pressure))
    )


def build(
    rb: Rulebase,
    profile: Mapping[str, Any],
    trace: Trace,
    provenance: Provenance,
    recommender: Any = None,
) -> Recommendation:
    """Assemble the recommendation for one profile from its trace."""
    tables = rb.memo("reasoning", _Tables)
    chain = _Chain(rb, trace, tables)
    fired = chain.fired
    parts = tables.parts

    contributions: dict[str, list[Contribution]] = {}
    exclusions: dict[str, list[str]] = {}
    refer_rules: list[Rule] = []
    notes: list[Step] = []
    warnings: list[Step] = []
    for rule_id in fired:
        score, excludes, refers, note, warn = parts[rule_id]
        if score:
            level = chain.level(rule_id)
            counted = level != REFUTED
            for tech, weight in score:
                found = contributions.get(tech)
                contribution = Contribution(rule_id, weight, level, counted)
                if found is None:
                    contributions[tech] = [contribution]
                else:
                    found.append(contribution)
        for tech in excludes:
            exclusions.setdefault(tech, []).append(rule_id)
        if refers:
            refer_rules.append(rb.by_id[rule_id])
        if note:
            notes.append(chain.step(rule_id))
        if warn:
            warnings.append(chain.step(rule_id))

    referral = _referral(rb, chain, refer_rules)
    if referral is not None:
        refer_ids = [s.rule_id for s in referral.rationale if parts[s.rule_id][2]]
        limit = None if referral.withholds_techniques else referral.max_pressure
        for technique in rb.techniques.values():
            if referral.withholds_techniques or (
                limit and PRESSURES.index(technique.pressure) > PRESSURES.index(limit)
            ):
                exclusions.setdefault(technique.id, []).extend(refer_ids)

    ranked: list[RankedTechnique] = []
    demoted: list[NotRecommended] = []
    for tech_id, contribs in sorted(contributions.items()):
        if tech_id in exclusions:
            continue
        technique = rb.techniques[tech_id]
        if len(contribs) > 1:
            contribs.sort(key=_by_weight)
        kept = [c for c in contribs if c.counted]
        total = round(float(sum(sorted(c.weight for c in kept))), 6)
        by_level = counted_by_evidence(kept)
        raising = [c.evidence for c in kept if c.weight > 0]
        evidence = weakest(raising or [c.evidence for c in kept] or [c.evidence for c in contribs])
        rationale = chain.explain([c.rule_id for c in contribs])
        against = tuple(c.rule_id for c in kept if c.weight < 0)
        if total > 0 and not against:
            ranked.append(RankedTechnique(technique.id, technique.name, technique.description, technique.pressure,
                                          total, evidence, by_level, tuple(contribs), rationale))
        else:
            demoted.append(NotRecommended(technique.id, technique.name, total, "demoted" if against else "no_points",
                                          against, tuple(contribs), rationale))
    # Ties go to the better-supported technique, then to the id, so the order never depends on chance.
    if len(ranked) > 1:
        if provenance.ranking == "evidence":
            ranked.sort(key=lambda t: (-t.supported_score, -t.score, _RANK[t.evidence], t.id))
        else:
            ranked.sort(key=lambda t: (-t.score, _RANK[t.evidence], t.id))

    excluded = tuple(
        Exclusion(tech, rb.techniques[tech].name, chain.explain(sorted(set(ids))))
        for tech, ids in sorted(exclusions.items())
    )
    if referral is not None and rb.techniques and set(rb.techniques) <= set(exclusions):
        # Every technique is out, whatever ruled each out: the referral must not promise gentle ones.
        referral = attrs.evolve(referral, withheld=True, max_pressure=None)
    derived = []
    derivers = chain.derivers
    for fact in trace.derived:
        by = derivers.get(fact, ())
        level = strongest([chain.level(r) for r in by]) if by else "claim"
        derived.append(DerivedFact(fact[0], fact[1], tables.text(fact), level, tuple(by)))
    return Recommendation(
        profile=profile,
        techniques=tuple(ranked),
        not_recommended=tuple(demoted),
        excluded=excluded,
        referral=referral,
        derived=tuple(derived),
        fired=tuple(fired),
        notes=tuple(notes),
        warnings=tuple(warnings),
        provenance=provenance,
        recommender=recommender,
    )


def _by_weight(c: Contribution) -> tuple[float, str]:
    return (-c.weight, c.rule_id)


def _referral(rb: Rulebase, chain: _Chain, refer_rules: list[Rule]) -> Referral | None:
    if not refer_rules:
        return None
    urgency = min((r.then.refer.urgency for r in refer_rules if r.then.refer), key=URGENCIES.index)
    # The most urgent referral stands alone: a milder one beside it (whoever wrote it) is not
    # allowed to water down what the person reads about it.
    refer_rules = [r for r in refer_rules if r.then.refer and r.then.refer.urgency == urgency]
    ids = [r.id for r in refer_rules]
    rationale = chain.explain(ids)
    flags = sorted({str(v) for rid in chain.order(ids) for n, v in chain.premises[rid] if n == "red_flags"}
                   | {f for rid in chain.order(ids) for f in rb.by_id[rid].then.flag})
    triggers = tuple(Premise(n, v, chain.tables.text((n, v)), True) for n, v in chain.roots(ids))
    return Referral(
        urgency=urgency,
        suspected=tuple(sorted({_suspected(r, chain.tables.packs) for r in refer_rules})),
        flags=tuple(flags),
        triggers=triggers,
        action=rb.urgency_actions.get(urgency, "See a clinician."),
        max_pressure=None if urgency in ("emergency", "urgent") else rb.urgency_limits.get(urgency),
        sources=tuple(sorted({s.source for s in rationale})),
        rationale=rationale,
    )


def _suspected(rule: Rule, packs: Mapping[str, str]) -> str:
    """What a referral may point to, saying which rule pack says so when it is not backcare's own."""
    assert rule.then.refer is not None
    pack = packs.get(rule.id)
    return rule.then.refer.suspected + (f" (according to the rule pack {pack!r})" if pack else "")


__all__ = ["SUPPORTED_LEVELS", "build", "excluded_by", "fact_text", "strongest", "weakest"]
