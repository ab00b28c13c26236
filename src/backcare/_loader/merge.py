"""Merging parsed packs in order: ids, replacement, disabling, and the safety rules' protection."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .._errors import Problem, did_you_mean
from .._model import (
    Conclusion,
    Condition,
    Contraindication,
    Exclude,
    Origin,
    Protection,
    RedFlag,
    Refer,
    Rule,
    Rulebase,
    Test,
)
from .._profile import COMPUTED_FACTS, core_fields
from .._text import display_key, quote, scripts
from . import safety
from .parse import _RawPack


def _dedupe(problems: Iterable[Problem]) -> list[Problem]:
    seen: dict[Problem, None] = {}
    for p in problems:
        seen.setdefault(p, None)
    return list(seen)


def _merge_entries(
    entries_by_pack: Iterable[tuple[str, list[tuple[Any, bool]]]],
    what: str,
    problems: list[Problem],
) -> tuple[dict[str, Any], list[tuple[Any, Any]]]:
    """Merge id-keyed entries across packs: unique within a pack, replaced only on request.

    Returns the merged entries and the (old, new) pairs that were replaced.
    """
    merged: dict[str, Any] = {}
    replaced: list[tuple[Any, Any]] = []
    kind = what.replace(" ", "_")
    for _pack, entries in entries_by_pack:
        seen_here: dict[str, Any] = {}
        for entry, replace in entries:
            where = entry.origin or Origin("<rules>")
            if entry.id in seen_here:
                first = seen_here[entry.id].origin
                problems.append(
                    Problem(f"duplicate {what} id {entry.id!r} (first defined at {first})", where.file,
                            where.line, entry.id, "id", kind=kind)
                )
                continue
            seen_here[entry.id] = entry
            if entry.id in merged:
                if not replace:
                    problems.append(
                        Problem(
                            f"{what} {entry.id!r} is already defined at {merged[entry.id].origin}; "
                            "add replace = true to override it",
                            where.file, where.line, entry.id, "id", kind=kind,
                        )
                    )
                    continue
                replaced.append((merged[entry.id], entry))
            elif replace:
                problems.append(
                    Problem(
                        f"replace = true but no earlier pack defines {what} {entry.id!r}"
                        f"{did_you_mean(entry.id, merged)}",
                        where.file, where.line, entry.id, "replace", kind=kind,
                    )
                )
            merged[entry.id] = entry
    return merged, replaced


_OPT_IN = "Recommender(..., allow_safety_overrides=True)"


def _merge(raw_packs: list[_RawPack], problems: list[Problem], allow_safety_overrides: bool) -> Rulebase | None:
    fields = dict(core_fields())
    for pack in raw_packs:
        for spec in pack.fields:
            origin = pack.field_origins[spec.name]
            if spec.name in fields:
                problems.append(
                    Problem(f"profile field {spec.name!r} is already defined", origin.file, origin.line, spec.name,
                            "name", kind="field")
                )
            elif spec.name in COMPUTED_FACTS:
                problems.append(
                    Problem(f"profile field {spec.name!r} is the name of a fact backcare computes "
                            f"({COMPUTED_FACTS[spec.name].description.split('.')[0].lower()})",
                            origin.file, origin.line, spec.name, "name", kind="field")
                )
            else:
                fields[spec.name] = spec
    techniques, tech_replaced = _merge_entries(((p.name, p.techniques) for p in raw_packs), "technique", problems)
    sources, src_replaced = _merge_entries(((p.name, p.sources) for p in raw_packs), "source", problems)
    facts, fact_replaced = _merge_entries(((p.name, p.facts) for p in raw_packs), "fact", problems)
    red_flags, rf_replaced = _merge_entries(((p.name, p.red_flags) for p in raw_packs), "red flag", problems)
    contras, ci_replaced = _merge_entries(
        ((p.name, p.contraindications) for p in raw_packs), "contraindication", problems
    )

    # Catalogue entries are rules too: compile them before merging rules so that
    # disabling or replacing them goes through the same safety checks.
    def catalogue_rules(p: _RawPack) -> list[tuple[Rule, bool]]:
        out = [(_red_flag_rule(f), rep) for f, rep in p.red_flags]
        out += [(r, rep) for c, rep in p.contraindications for r in _contraindication_rules(c)]
        return out

    rules, replaced = _merge_entries(
        ((p.name, catalogue_rules(p) + p.rules) for p in raw_packs), "rule", problems
    )
    guard = _Guard(problems, allow_safety_overrides)
    urgency, limits = _merge_urgency(raw_packs, guard)

    # What safety depends on, judged on every definition a pack touches: the
    # rules as merged plus the originals of those replaced.
    every_definition = [*rules.values(), *(old for old, _ in replaced)]
    needed = safety.protection(every_definition)
    for old, new in replaced:
        why = _why_protected(old, needed)
        if why:
            guard.check(f"{why}: replacing it needs {_OPT_IN}", f"{_kind(old, needed)} replaced by {new.origin}",
                        new.origin, old.id, "replace")
    disabled: list[str] = []
    for pack in raw_packs:
        for rule_id, origin in pack.disable:
            if rule_id not in rules:
                problems.append(
                    Problem(f"cannot disable unknown rule {quote(rule_id)}{did_you_mean(rule_id, rules)}",
                            origin.file, origin.line, rule_id, "disable")
                )
                continue
            why = _why_protected(rules[rule_id], needed)
            if why and not guard.check(f"{why}: disabling it needs {_OPT_IN}",
                                       f"{_kind(rules[rule_id], needed)} disabled by {origin}", origin, rule_id,
                                       "disable"):
                continue
            del rules[rule_id]
            disabled.append(rule_id)

    attributes = safety.protected_attributes(every_definition, limits)
    for old, new in tech_replaced:
        for attr in [a for a in attributes if getattr(old, a) != getattr(new, a)]:
            why = ("safety rules read its pressure" if attr == "pressure"
                   else f"exclusions and referrals show techniques by their {attr}")
            guard.check(
                f"technique {old.id!r}: {why} ({quote(getattr(old, attr))}); changing it needs {_OPT_IN}",
                f"technique {old.id!r} {attr} changed from {quote(getattr(old, attr))} to "
                f"{quote(getattr(new, attr))} by {new.origin}",
                new.origin, old.id, attr, "technique")
    cited = safety.protected_sources(every_definition, needed)
    cited |= {e.source for e in (*red_flags.values(), *contras.values())}
    for old, new in src_replaced:
        if old.id in cited:
            guard.check(f"source {old.id!r} is cited by safety rules: replacing it needs {_OPT_IN}",
                        f"source {old.id!r} replaced by {new.origin}", new.origin, old.id, "replace", "source")
    safety_facts = {f for r in every_definition if r.safety or r.id in needed
                    for f in (*(c.fact for c in r.when), *(f for f, _ in r.then.derive))}
    for old, new in fact_replaced:
        if old.name in safety_facts and (old.label, old.description) != (new.label, new.description):
            guard.check(f"fact {old.name!r} is tested or derived by safety rules, and results name it by its "
                        f"label: relabelling it needs {_OPT_IN}", f"fact {old.name!r} relabelled by {new.origin}",
                        new.origin, old.name, "label", "fact")
    _check_display_names(techniques.values(), "name", "technique name", "technique", problems)
    _check_display_names(red_flags.values(), "description", "red flag description", "red_flag", problems)
    _check_display_names(contras.values(), "description", "contraindication description", "contraindication",
                         problems)

    final = tuple(sorted(rules.values(), key=lambda r: r.id))
    examples = tuple(e for p in raw_packs for e in p.examples)
    ranking = next((p.meta["ranking"] for p in reversed(raw_packs) if "ranking" in p.meta), None)
    return Rulebase(
        fields=fields,
        techniques=dict(sorted(techniques.items())),
        sources=dict(sorted(sources.items())),
        rules=final,
        red_flags=dict(sorted(red_flags.items())),
        contraindications=dict(sorted(contras.items())),
        urgency_actions=urgency,
        examples=examples,
        safety_overrides=tuple(sorted(guard.overrides)),
        disabled=tuple(sorted(disabled)),
        urgency_limits=limits,
        protected=safety.protection(final),
        protected_attributes=attributes,
        ranking=ranking,
        facts=dict(sorted(facts.items())),
    )


class _Guard:
    """Refuses a change to safety content, or records it when the caller opted in."""

    def __init__(self, problems: list[Problem], allow: bool) -> None:
        self.problems = problems
        self.allow = allow
        self.overrides: list[str] = []

    def check(self, refusal: str, override: str, origin: Origin | None, ident: str, key: str,
              kind: str = "rule") -> bool:
        """True if the change may go ahead."""
        if self.allow:
            self.overrides.append(override)
            return True
        self.problems.append(Problem(refusal, origin.file if origin else None,
                                     origin.line_of(key) if origin else None, ident, key, kind=kind))
        return False


def _kind(rule: Rule, needed: dict[str, Protection]) -> str:
    """How an override names the rule: a safety rule, or one that safety rules depend on."""
    if rule.safety:
        return f"safety rule {rule.id!r}"
    return f"rule {rule.id!r} (needed by safety rule {', '.join(repr(r) for r in needed[rule.id].needed_by)})"


def _why_protected(rule: Rule, needed: dict[str, Protection]) -> str | None:
    if rule.safety:
        return f"rule {rule.id!r} is a safety rule"
    if rule.id in needed:
        return f"rule {rule.id!r} is protected because {safety.needed_by_text(needed[rule.id])}"
    return None


def _merge_urgency(raw_packs: list[_RawPack], guard: _Guard) -> tuple[dict[str, str], dict[str, str]]:
    """Urgency texts are safety content: the first pack to set a level owns it."""
    actions: dict[str, str] = {}
    limits: dict[str, str] = {}
    owner: dict[str, Origin] = {}
    for pack in raw_packs:
        for level, (action, limit, origin) in sorted(pack.urgency.items()):
            if level in owner and (actions[level], limits.get(level)) != (action, limit):
                if not guard.check(
                    f"[urgency.{level}] is safety content, set at {owner[level]}: changing it needs {_OPT_IN}",
                    f"[urgency.{level}] changed by {origin}", origin, f"urgency.{level}", "action", "urgency",
                ):
                    continue
            owner.setdefault(level, origin)
            actions[level] = action
            if limit is None:
                limits.pop(level, None)
            else:
                limits[level] = limit
    return actions, limits


def _check_display_names(
    entries: Iterable[Any], attribute: str, what: str, kind: str, problems: list[Problem]
) -> None:
    """Names a person reads must tell entries apart: one look, one entry, one script.

    Two techniques called "Deep pressure" (or "Deep pressure." or "D\u0435ep
    pressure" with a Cyrillic e) would let a result list one while excluding
    the other; two red flags worded alike but of different urgency would let a
    form offer the weaker one. So names are compared as they look (see
    :func:`backcare._text.display_key`), and a name may not mix scripts.
    """
    seen: dict[str, Any] = {}
    for entry in entries:  # in the order packs defined them: the later one is the problem
        text = getattr(entry, attribute)
        o = entry.origin or Origin("<rules>")
        mixed = sorted(s for s in scripts(text) if s != "?")
        if len(mixed) > 1:
            problems.append(Problem(
                f"{what} {quote(text)} mixes {' and '.join(s.title() for s in mixed)} letters, so it can look "
                "like another; write it in one script", o.file, o.line_of(attribute), entry.id, attribute,
                kind=kind))
            continue
        key = display_key(text)
        if key in seen:
            first = seen[key]
            problems.append(Problem(
                f"{what} {quote(text)} looks the same as that of {kind.replace('_', ' ')} {first.id!r} "
                f"({first.origin}); give each its own", o.file, o.line_of(attribute), entry.id, attribute,
                kind=kind))
        else:
            seen[key] = entry


_NEEDS = {
    "emergency": "it needs assessment the same day, not massage",
    "urgent": "it needs a doctor's assessment within days, before any massage",
    "routine": "it needs assessment by a clinician at a routine appointment; until then, only gentle massage",
}


def _red_flag_rule(flag: RedFlag) -> Rule:
    return Rule(
        id=f"red-flag.{flag.id}",
        title=f"Red flag: {flag.description}",
        when=(Condition("red_flags", (Test("contains", flag.id),)),),
        then=Conclusion(refer=Refer(flag.urgency, flag.suspected)),
        because=f"{flag.description} can be a sign of {flag.suspected}; {_NEEDS[flag.urgency]}.",
        source=flag.source,
        evidence="guideline",
        safety=True,
        origin=flag.origin,
    )


def _contraindication_rules(c: Contraindication) -> list[Rule]:
    """A contraindication's rules: one, or two for a local one (on the back, or elsewhere).

    Every technique backcare lists is applied to the back, so a local
    condition the profile does not place elsewhere rules them all out: a
    result never recommends a technique on an area it says to avoid.
    """
    has = Condition("conditions", (Test("contains", c.id),))
    what = c.description[0].lower() + c.description[1:]
    if c.effect != "avoid_area":
        warn = f"ask the treating clinician before massage ({what})" if c.effect == "consult_first" else None
        return [Rule(f"contraindication.{c.id}", f"Contraindication: {c.description}", (has,),
                     Conclusion(exclude=c.exclude, refer=c.refer, warn=warn), c.because, c.source, "low",
                     safety=True, origin=c.origin)]
    keep_away = f"keep massage away from the affected area ({what})"
    return [
        Rule(f"contraindication.{c.id}", f"Contraindication on the back: {c.description}",
             (Condition("away_from_back", (Test("lacks", c.id),)), has),
             Conclusion(exclude=Exclude(all=True), refer=c.refer, warn=keep_away),
             f"{c.because} Every technique here is applied to the back, and the profile does not place "
             "this anywhere else, so no technique is recommended.",
             c.source, "low", safety=True, origin=c.origin),
        Rule(f"contraindication.{c.id}.elsewhere", f"Contraindication away from the back: {c.description}",
             (Condition("away_from_back", (Test("contains", c.id),)),),
             Conclusion(warn=keep_away), c.because, c.source, "low", safety=True, origin=c.origin),
    ]

