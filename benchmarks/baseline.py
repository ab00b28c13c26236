"""The default pack's reasoning written by hand in plain Python: the benchmark's honest baseline.

Issue 16, item 6: the fastest a Python program could give backcare's answer
for the default pack, safety rules and result building included. The rules
are ``if`` statements in dependency order (no engine, no rule tables to
interpret); what a result says about each rule (title, source, conclusion
in words) is read from the loaded pack once, when the baseline is built, as
a hand-written program would hold it in constants. Per profile it works out
which rules fire on which facts and builds the :class:`backcare.Recommendation`
directly, with the same memo of steps backcare keeps.

It is a second copy of the rules by design, so it can fall out of step with
``rules/``: ``bench.py`` checks it equal to backcare's ``to_json()`` on the
whole cohort before timing anything, and stops if it is not.
"""

from __future__ import annotations

from typing import Any

import backcare
from backcare._model import EVIDENCE_LEVELS, PRESSURES, REFUTED, URGENCIES
from backcare._reasoning import words
from backcare._result import (
    Contribution,
    DerivedFact,
    Exclusion,
    NotRecommended,
    Premise,
    RankedTechnique,
    Recommendation,
    Referral,
    Step,
)

Fact = tuple[str, Any]
_RANK = {level: i for i, level in enumerate(EVIDENCE_LEVELS)}
TRUE_FIELDS = ("injury", "inflammation", "scar_tissue", "tight_bands", "stiffness", "reduced_range_of_motion",
               "slow_healing", "sciatica")


def _key(fact: Fact) -> tuple[str, str, str]:
    return (fact[0], type(fact[1]).__name__, repr(fact[1]))


class Baseline:
    """The default pack, by hand. ``recommend(profile)`` takes a validated profile's ``to_dict()``."""

    def __init__(self, rec: backcare.Recommender) -> None:
        rb = rec.rulebase
        w = words(rb)
        self.provenance = rec.provenance
        self.rules = rb.by_id
        self.conclusion = {r.id: w.conclusion(r) for r in rb.rules}
        self.rank = {r.id: _RANK[r.evidence] for r in rb.rules}
        self.techniques = rb.techniques
        self.sources = rb.sources
        self.actions = rb.urgency_actions
        self.limits = rb.urgency_limits
        self.fact_words = w.fact
        self.excludes: dict[str, list[str]] = {}
        for r in rb.rules:
            ex = r.then.exclude
            if ex is not None:
                self.excludes[r.id] = sorted(
                    t.id for t in rb.techniques.values()
                    if ex.all or t.id in ex.techniques or (ex.only is not None and t.id not in ex.only)
                    or (ex.max_pressure and PRESSURES.index(t.pressure) > PRESSURES.index(ex.max_pressure)))
        self.local = sorted(c.id for c in rb.contraindications.values() if c.effect == "avoid_area")
        self.steps: dict[tuple[str, tuple[tuple[str, type, Any], ...], tuple[bool, ...]], Step] = {}
        self.texts: dict[tuple[str, type, Any], str] = {}

    # -- which rules fire on which facts ------------------------------------------------------

    def fire(self, p: dict[str, Any]) -> tuple[set[Fact], dict[str, set[Fact]], dict[Fact, set[str]]]:
        """The given facts, each fired rule's premises, and each derivable fact's deriving rules."""
        given: set[Fact] = set()
        for name, value in p.items():
            if type(value) is list:
                given.update((name, x) for x in value)
            else:
                given.add((name, value))
        prem: dict[str, set[Fact]] = {}
        by: dict[Fact, set[str]] = {}

        def fire(rule: str, *premises: Fact) -> None:
            found = prem.get(rule)
            if found is None:
                prem[rule] = set(premises)
            else:
                found.update(premises)

        def derive(rule: str, fact: Fact, *premises: Fact) -> Fact:
            fire(rule, *premises)
            by.setdefault(fact, set()).add(rule)
            return fact

        weeks, age, pain = p.get("pain_weeks"), p.get("age"), p.get("pain_intensity")
        yes = {name for name in TRUE_FIELDS if p.get(name) is True}
        conds = set(p.get("conditions", ()))
        away = set(p.get("away_from_back", ()))
        flags = set(p.get("red_flags", ()))

        # duration and the evidence on massage for it
        chronic = False
        if weeks is not None:
            wk = ("pain_weeks", weeks)
            fire("seed.rubbing-feels-good", wk)
            kind = "acute" if weeks < 4 else "subacute" if weeks <= 12 else "chronic"
            dur = derive(f"duration.{kind}", ("duration", kind), wk)
            fire("evidence.self-management", dur)
            if kind == "chronic":
                chronic = True
                fire("evidence.chronic-massage-trial", dur)
                fire("evidence.chronic-with-exercise", dur)
            else:
                fire("evidence.acute-subacute-massage", dur)
        # the seed's chains
        healing: list[Fact] = []
        if chronic:
            healing.append(derive("seed.chronic-not-healing", ("healing_impaired", True), ("duration", "chronic")))
        if "slow_healing" in yes:
            healing.append(derive("seed.slow-healing", ("healing_impaired", True), ("slow_healing", True)))
        if healing:
            flow = derive("seed.blood-flow-nutrients", ("improve_blood_flow", True), ("healing_impaired", True))
            fire("seed.blood-flow-techniques", flow)
            fire("seed.toxin-removal", flow)
        inflamed = "inflammation" in yes
        if "injury" in yes:
            derive("seed.injury-inflammation", ("inflammation", True), ("injury", True))
            inflamed = True
        scar = False
        if inflamed:
            derive("seed.inflammation-scar-tissue", ("scar_tissue_suspected", True), ("inflammation", True))
            scar = True
        if "scar_tissue" in yes:
            derive("seed.known-scar-tissue", ("scar_tissue_suspected", True), ("scar_tissue", True))
            scar = True
        if scar:
            fire("seed.break-up-scar-tissue", ("scar_tissue_suspected", True))
        elastic = False
        if "stiffness" in yes:
            derive("seed.stiffness-elasticity", ("poor_elasticity", True), ("stiffness", True))
            fire("seed.swedish-long-strokes",
                 derive("seed.stiffness-elongation", ("needs_elongation", True), ("stiffness", True)))
            elastic = True
        if "reduced_range_of_motion" in yes:
            derive("seed.range-of-motion-elasticity", ("poor_elasticity", True), ("reduced_range_of_motion", True))
            elastic = True
        if elastic:
            fire("seed.elasticity-stretching-kneading", ("poor_elasticity", True))
        if "tight_bands" in yes:
            fire("seed.trigger-point-pressure",
                 derive("seed.tight-bands-trigger-points", ("trigger_points", True), ("tight_bands", True)))
        goal = p.get("goal")
        if goal == "relaxation":
            fire("seed.relaxation-goal", ("goal", goal))
        elif goal == "long_term_relief" and chronic:
            fire("seed.more-than-rubbing", ("duration", "chronic"), ("goal", goal))
        # intensity, STarT Back, sciatica
        if pain is not None:
            pi = ("pain_intensity", pain)
            level = "none" if pain == 0 else "mild" if pain <= 3 else "moderate" if pain <= 6 else "severe"
            derive(f"intensity.{level}", ("intensity", level), pi)
            if pain >= 7:
                fire("safety.severe-pain", pi)
        score, psych = p.get("start_back_score"), p.get("start_back_psychosocial")
        if psych is not None and psych >= 4:
            fire("startback.high-care", derive("startback.high", ("start_back_risk", "high"),
                                                ("start_back_psychosocial", psych)))
        if score is not None and score <= 3:
            fire("startback.low-care", derive("startback.low", ("start_back_risk", "low"), ("start_back_score", score)))
        if psych is not None and psych <= 3 and score is not None and score >= 4:
            fire("startback.medium-care", derive("startback.medium", ("start_back_risk", "medium"),
                                                  ("start_back_psychosocial", psych), ("start_back_score", score)))
        if "sciatica" in yes:
            fire("safety.sciatica-warning-signs", ("sciatica", True))
            fire("sciatica.same-package", ("sciatica", True))
        # safety on the profile's own answers
        if p.get("pressure_tolerance") == "low":
            fire("safety.low-pressure-tolerance", ("pressure_tolerance", "low"))
        if age is None:
            given.add(("age:given", False))
            fire("safety.age-not-given", ("age:given", False))
        else:
            if age < 16:
                fire("safety.under-16", ("age", age))
            if age > 50 and weeks is None:
                unknown = ("pain_weeks:given", False)
                given.add(unknown)
                fire("safety.over-50-duration-unknown", ("age", age), unknown)
            if weeks is not None:
                o = round(age - weeks / 52, 2)
                onset = ("onset_age", int(o) if o.is_integer() else o)
                given.add(onset)
                if onset[1] > 50:
                    flags.add(derive("safety.new-pain-over-50", ("red_flags", "new_pain_over_50"), onset)[1])
        # conditions, including the one a fresh injury implies, and trauma
        if "injury" in yes and weeks is not None and weeks < 1:
            conds.add(derive("safety.fresh-injury", ("conditions", "acute_injury_72h"), ("injury", True),
                             ("pain_weeks", weeks))[1])
        if "injury" in yes and weeks is None:
            unknown = ("pain_weeks:given", False)
            given.add(unknown)
            conds.add(derive("safety.injury-timing-unknown", ("conditions", "acute_injury_72h"), ("injury", True),
                             unknown)[1])
        trauma = False
        if "injury" in yes:
            derive("safety.trauma-injury", ("trauma", True), ("injury", True))
            trauma = True
        if "recent_fracture" in conds:
            derive("safety.trauma-recent-fracture", ("trauma", True), ("conditions", "recent_fracture"))
            trauma = True
        if "acute_injury_72h" in conds:
            derive("safety.trauma-recent-injury", ("trauma", True), ("conditions", "acute_injury_72h"))
            trauma = True
        if trauma and "osteoporosis" in conds:
            flags.add(derive("safety.trauma-with-osteoporosis", ("red_flags", "minor_trauma_with_osteoporosis"),
                             ("conditions", "osteoporosis"), ("trauma", True))[1])
        for cond, rule in (("active_cancer_treatment", "safety.cancer-treatment"),
                           ("tumour_at_site", "safety.cancer-tumour"),
                           ("radiotherapy_skin", "safety.cancer-radiotherapy")):
            if cond in conds:
                flags.add(derive(rule, ("red_flags", "history_of_cancer"), ("conditions", cond))[1])
        if "systemic_infection" in conds:
            flags.add(derive("safety.systemic-infection", ("red_flags", "fever"), ("conditions", "systemic_infection"))[1])
        for cond in self.local:  # a local condition counts as on the back unless placed elsewhere
            if cond in away:
                fire(f"contraindication.{cond}.elsewhere", ("away_from_back", cond))
            elif cond in conds:
                lacks = ("away_from_back:lacks", cond)
                given.add(lacks)
                fire(f"contraindication.{cond}", lacks, ("conditions", cond))
                if cond == "recent_surgery":
                    flags.add(derive("safety.surgery-on-the-back", ("red_flags", "recent_spinal_procedure"), lacks,
                                     ("conditions", cond))[1])
        for cond in conds:
            if cond not in self.local:
                fire(f"contraindication.{cond}", ("conditions", cond))
        for flag in flags:
            fire(f"red-flag.{flag}", ("red_flags", flag))
        return given, prem, by

    # -- the result --------------------------------------------------------------------------

    def recommend(self, p: dict[str, Any], recommender: Any = None) -> Recommendation:
        given, prem, by = self.fire(p)
        rules = self.rules
        fired = sorted(prem)
        ordered: dict[str, tuple[Fact, ...]] = {}
        behind_memo: dict[str, list[str]] = {}
        levels: dict[str, int] = {}
        step_memo: dict[str, Step] = {}

        def premises(rid: str) -> tuple[Fact, ...]:
            found = ordered.get(rid)
            if found is None:
                found = ordered[rid] = tuple(sorted(prem[rid], key=_key))
            return found

        def behind(rid: str) -> list[str]:
            found = behind_memo.get(rid)
            if found is None:
                out: list[str] = []
                seen: set[str] = set()

                def visit(r: str) -> None:
                    if r in seen:
                        return
                    seen.add(r)
                    for fact in premises(r):
                        if fact not in given:
                            for d in sorted(by.get(fact, ())):
                                visit(d)
                    out.append(r)

                visit(rid)
                found = behind_memo[rid] = out
            return found

        def order(ids: Any) -> list[str]:
            out: list[str] = []
            seen: set[str] = set()
            for rid in ids:
                for r in behind(rid):
                    if r not in seen:
                        seen.add(r)
                        out.append(r)
            return out

        def level(rid: str) -> int:
            found = levels.get(rid)
            if found is None:
                found = levels[rid] = max(self.rank[r] for r in behind(rid))
            return found

        def text(fact: Fact) -> str:
            k = (fact[0], type(fact[1]), repr(fact[1]) if type(fact[1]) is float else fact[1])
            found = self.texts.get(k)
            if found is None:
                found = self.texts[k] = self.fact_words(*fact)
            return found

        def step(rid: str) -> Step:
            found = step_memo.get(rid)
            if found is None:
                ps = premises(rid)
                mine = tuple(f in given for f in ps)
                k = (rid, tuple((n, type(v), repr(v) if type(v) is float else v) for n, v in ps), mine)
                found = self.steps.get(k)
                if found is None:
                    r = rules[rid]
                    src = self.sources[r.source]
                    found = self.steps[k] = Step(
                        rid, r.title, r.because, self.conclusion[rid],
                        tuple(Premise(n, v, text((n, v)), g) for (n, v), g in zip(ps, mine)),
                        r.source, src.citation, r.evidence, src.passage, r.caveat, r.caveat_source,
                        self.sources[r.caveat_source].citation if r.caveat_source else None, r.untested)
                step_memo[rid] = found
            return found

        def explain(ids: Any) -> tuple[Step, ...]:
            return tuple(step(r) for r in order(ids))

        contributions: dict[str, list[Contribution]] = {}
        exclusions: dict[str, list[str]] = {}
        refer: list[str] = []
        for rid in fired:
            then = rules[rid].then
            if then.score:
                lv = EVIDENCE_LEVELS[level(rid)]
                for tech, weight in then.score:
                    contributions.setdefault(tech, []).append(Contribution(rid, weight, lv, lv != REFUTED))
            for tech in self.excludes.get(rid, ()):
                exclusions.setdefault(tech, []).append(rid)
            if then.refer:
                refer.append(rid)

        referral = None
        if refer:
            urgency = min((rules[r].then.refer.urgency for r in refer), key=URGENCIES.index)  # type: ignore[union-attr]
            refer = [r for r in refer if rules[r].then.refer.urgency == urgency]  # type: ignore[union-attr]
            rationale = explain(refer)
            chain = order(refer)
            flags = sorted({str(v) for r in chain for n, v in prem[r] if n == "red_flags"}
                           | {f for r in chain for f in rules[r].then.flag})
            roots = sorted({f for r in chain for f in prem[r] if f in given}, key=_key)
            withhold = urgency in ("emergency", "urgent")
            limit = None if withhold else self.limits.get(urgency)
            referral = Referral(urgency, tuple(sorted({rules[r].then.refer.suspected for r in refer})),  # type: ignore[union-attr]
                                tuple(flags), tuple(Premise(n, v, text((n, v)), True) for n, v in roots),
                                self.actions.get(urgency, "See a clinician."), limit,
                                tuple(sorted({s.source for s in rationale})), rationale)
            refer_ids = [s.rule_id for s in rationale if rules[s.rule_id].then.refer]
            for tech in self.techniques.values():
                if withhold or (limit and PRESSURES.index(tech.pressure) > PRESSURES.index(limit)):
                    exclusions.setdefault(tech.id, []).extend(refer_ids)

        ranked: list[RankedTechnique] = []
        demoted: list[NotRecommended] = []
        for tech_id, contribs in sorted(contributions.items()):
            if tech_id in exclusions:
                continue
            tech = self.techniques[tech_id]
            contribs.sort(key=lambda c: (-c.weight, c.rule_id))
            counted = [c for c in contribs if c.counted]
            score = round(float(sum(sorted(c.weight for c in counted))), 6)
            split: dict[str, float] = {}
            for c in counted:
                split[c.evidence] = split.get(c.evidence, 0.0) + c.weight
            raising = [c.evidence for c in counted if c.weight > 0]
            evidence = max(raising or [c.evidence for c in counted] or [c.evidence for c in contribs],
                           key=_RANK.__getitem__)
            rationale = explain(c.rule_id for c in contribs)
            against = tuple(c.rule_id for c in counted if c.weight < 0)
            if score > 0 and not against:
                ranked.append(RankedTechnique(tech.id, tech.name, tech.description, tech.pressure, score, evidence,
                                              {k: round(v, 6) for k, v in split.items()}, tuple(contribs), rationale))
            else:
                demoted.append(NotRecommended(tech.id, tech.name, score, "demoted" if against else "no_points",
                                              against, tuple(contribs), rationale))
        if self.provenance.ranking == "evidence":
            ranked.sort(key=lambda t: (-t.supported_score, -t.score, _RANK[t.evidence], t.id))
        else:
            ranked.sort(key=lambda t: (-t.score, _RANK[t.evidence], t.id))
        excluded = tuple(Exclusion(t, self.techniques[t].name, explain(sorted(set(ids))))
                         for t, ids in sorted(exclusions.items()))
        if referral is not None and len(exclusions) == len(self.techniques):
            referral = Referral(referral.urgency, referral.suspected, referral.flags, referral.triggers,
                                referral.action, None, referral.sources, referral.rationale, True)
        derived = []
        for fact in sorted((f for f in by if f not in given), key=_key):
            who = sorted(by[fact])
            derived.append(DerivedFact(fact[0], fact[1], text(fact),
                                       EVIDENCE_LEVELS[min(level(r) for r in who)], tuple(who)))
        return Recommendation(
            profile=p,
            techniques=tuple(ranked),
            not_recommended=tuple(demoted),
            excluded=excluded,
            referral=referral,
            derived=tuple(derived),
            fired=tuple(fired),
            notes=tuple(step(r) for r in fired if rules[r].then.note),
            warnings=tuple(step(r) for r in fired if rules[r].then.warn),
            provenance=self.provenance,
            recommender=recommender,
        )


def check(rec: backcare.Recommender, base: Baseline, profiles: list[dict[str, Any]]) -> list[str]:
    """The profiles whose baseline result differs from backcare's (``to_json()``, byte for byte)."""
    bad = []
    for p in profiles:
        valid = rec.profile(p).to_dict()
        if base.recommend(valid).to_json() != rec.recommend(p).to_json():
            bad.append(repr(p))
    return bad
