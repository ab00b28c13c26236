"""What safety depends on, computed from the rule graph rather than listed by hand.

A safety rule is only as strong as the rules that derive the facts it tests:
if ``duration.acute`` could be disabled, a safety rule testing ``duration``
would never fire. So the loader protects, exactly like the safety rules
themselves, every rule that derives a fact a protected rule tests, to a
fixpoint. The same holds for what safety rules read besides facts: the
techniques' pressure levels (``max_pressure`` exclusions), the sources they
cite, and the urgency texts a referral shows.

Because the engine is monotonic (a rule can only add facts, never retract
them), adding rules can never stop a safety rule from firing; only disabling
or replacing what it depends on can. That is what is guarded here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .._model import INPUT_OPERATORS, Condition, Protection, Rule
from .._oracle import compare


def derived_by(rule: Rule) -> list[tuple[str, object]]:
    """The (fact, value) pairs a rule can add: derived facts, raised red flags, implied conditions."""
    return [*rule.then.derive, *(("red_flags", f) for f in rule.then.flag),
            *(("conditions", c) for c in rule.then.condition)]


def may_hold(cond: Condition, value: object) -> bool:
    """Whether a fact with ``value`` can satisfy ``cond`` (when unsure, yes: protect too much, not too little)."""
    for test in cond.tests:
        values = test.value if isinstance(test.value, tuple) else (test.value,)
        try:
            if test.op == "in":
                if not any(compare("eq", value, v) for v in values):  # type: ignore[arg-type]
                    return False
            elif not compare(test.op, value, test.value):  # type: ignore[arg-type]
                return False
        except (ValueError, TypeError):
            continue
    return True


def protection(rules: Iterable[Rule]) -> dict[str, Protection]:
    """Every non-safety rule some safety rule needs, with the safety rules that need it.

    ``rules`` may hold several definitions of one id (a rule and the one a
    later pack replaces it with): all count, so a replacement is judged
    against what the original was protecting.
    """
    rules = list(rules)
    derivers: dict[str, list[tuple[Rule, object]]] = {}
    for rule in rules:
        for fact, value in derived_by(rule):
            derivers.setdefault(fact, []).append((rule, value))
    needs: dict[str, set[str]] = {}
    queue: list[tuple[Rule, frozenset[str]]] = [(r, frozenset({r.id})) for r in rules if r.safety]
    while queue:
        rule, roots = queue.pop()
        for cond in rule.when:
            if any(t.op in INPUT_OPERATORS for t in cond.tests):
                continue  # tests the profile as given: nothing derives it
            for deriver, value in derivers.get(cond.fact, ()):
                if deriver.safety or not may_hold(cond, value):
                    continue
                have = needs.setdefault(deriver.id, set())
                if not roots <= have:
                    have |= roots
                    queue.append((deriver, frozenset(have)))
    return {rid: Protection(rid, tuple(sorted(roots))) for rid, roots in sorted(needs.items())}


def protected_attributes(rules: Iterable[Rule], urgency_limits: Mapping[str, str]) -> tuple[str, ...]:
    """The technique attributes safety depends on.

    ``pressure``, if any safety rule or referral limits by it; and always the
    ``name`` and ``description``, which exclusions and referrals show a person:
    swapping two techniques' names would list deep pressure as light stroking.
    """
    reads = any(r.safety and r.then.exclude is not None and r.then.exclude.max_pressure for r in rules)
    return ("name", "description", *(("pressure",) if reads or urgency_limits else ()))


def protected_sources(rules: Iterable[Rule], protected: Mapping[str, Protection]) -> set[str]:
    """The sources that safety rules, and the rules they depend on, cite."""
    out: set[str] = set()
    for rule in rules:
        if rule.safety or rule.id in protected:
            out.add(rule.source)
            if rule.caveat_source:
                out.add(rule.caveat_source)
    return out


def needed_by_text(p: Protection) -> str:
    """How a problem or ``rules show`` names the safety rules behind a protected rule."""
    names = ", ".join(repr(r) for r in p.needed_by[:3])
    more = f" and {len(p.needed_by) - 3} more" if len(p.needed_by) > 3 else ""
    which = "rule" if len(p.needed_by) == 1 else "rules"
    return f"the safety {which} {names}{more} test{'s' if len(p.needed_by) == 1 else ''} a fact it derives"
