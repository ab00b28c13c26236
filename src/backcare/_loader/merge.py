"""Merging parsed packs in order: ids, replacement, disabling, and the safety rules' protection."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .._errors import Problem, did_you_mean
from .._model import (
    Conclusion,
    Condition,
    Contraindication,
    Origin,
    RedFlag,
    Refer,
    Rule,
    Rulebase,
    Test,
)
from .._profile import core_fields
from .._text import quote
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
            else:
                fields[spec.name] = spec
    techniques, _ = _merge_entries(((p.name, p.techniques) for p in raw_packs), "technique", problems)
    sources, _ = _merge_entries(((p.name, p.sources) for p in raw_packs), "source", problems)
    red_flags, rf_replaced = _merge_entries(((p.name, p.red_flags) for p in raw_packs), "red flag", problems)
    contras, ci_replaced = _merge_entries(
        ((p.name, p.contraindications) for p in raw_packs), "contraindication", problems
    )

    # Catalogue entries are rules too: compile them before merging rules so that
    # disabling or replacing them goes through the same safety checks.
    def catalogue_rules(p: _RawPack) -> list[tuple[Rule, bool]]:
        out = [(_red_flag_rule(f), rep) for f, rep in p.red_flags]
        out += [(_contraindication_rule(c), rep) for c, rep in p.contraindications]
        return out

    rules, replaced = _merge_entries(
        ((p.name, catalogue_rules(p) + p.rules) for p in raw_packs), "rule", problems
    )
    overrides: list[str] = []
    disabled: list[str] = []
    for old, new in replaced:
        if old.safety:
            note = f"safety rule {old.id!r} replaced by {new.origin}"
            if allow_safety_overrides:
                overrides.append(note)
            else:
                problems.append(
                    Problem(
                        f"rule {old.id!r} is a safety rule: replacing it needs "
                        "Recommender(..., allow_safety_overrides=True)",
                        new.origin.file if new.origin else None, new.origin.line if new.origin else None,
                        old.id, "replace",
                    )
                )
    for pack in raw_packs:
        for rule_id, origin in pack.disable:
            if rule_id not in rules:
                problems.append(
                    Problem(f"cannot disable unknown rule {quote(rule_id)}{did_you_mean(rule_id, rules)}",
                            origin.file, origin.line, rule_id, "disable")
                )
                continue
            if rules[rule_id].safety:
                if not allow_safety_overrides:
                    problems.append(
                        Problem(
                            f"rule {rule_id!r} is a safety rule: disabling it needs "
                            "Recommender(..., allow_safety_overrides=True)",
                            origin.file, origin.line, rule_id, "disable",
                        )
                    )
                    continue
                overrides.append(f"safety rule {rule_id!r} disabled by {origin}")
            del rules[rule_id]
            disabled.append(rule_id)
    urgency: dict[str, str] = {}
    for pack in raw_packs:
        urgency.update(pack.urgency)
    examples = tuple(e for p in raw_packs for e in p.examples)
    return Rulebase(
        fields=fields,
        techniques=dict(sorted(techniques.items())),
        sources=dict(sorted(sources.items())),
        rules=tuple(sorted(rules.values(), key=lambda r: r.id)),
        red_flags=dict(sorted(red_flags.items())),
        contraindications=dict(sorted(contras.items())),
        urgency_actions=urgency,
        examples=examples,
        safety_overrides=tuple(sorted(overrides)),
        disabled=tuple(sorted(disabled)),
    )


def _red_flag_rule(flag: RedFlag) -> Rule:
    return Rule(
        id=f"red-flag.{flag.id}",
        title=f"Red flag: {flag.description}",
        when=(Condition("red_flags", (Test("contains", flag.id),)),),
        then=Conclusion(refer=Refer(flag.urgency, flag.suspected)),
        because=f"{flag.description} can be a sign of {flag.suspected}; "
        f"it needs {flag.urgency} assessment by a clinician, not massage.",
        source=flag.source,
        evidence="guideline",
        safety=True,
        origin=flag.origin,
    )


def _contraindication_rule(c: Contraindication) -> Rule:
    warn = {
        "avoid_area": f"keep massage away from the affected area ({c.description.lower()})",
        "consult_first": f"ask the treating clinician before massage ({c.description.lower()})",
    }.get(c.effect)
    return Rule(
        id=f"contraindication.{c.id}",
        title=f"Contraindication: {c.description}",
        when=(Condition("conditions", (Test("contains", c.id),)),),
        then=Conclusion(exclude=c.exclude, refer=c.refer, warn=warn),
        because=c.because,
        source=c.source,
        evidence="low",
        safety=True,
        origin=c.origin,
    )

