"""Running the examples that rule files carry, and measuring rule coverage.

An example is a unit test written next to the rules it exercises: a profile
and what its result must show. Coverage counts the rules of the packs under
test that no example fires, so an untested rule is visible.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from ._errors import BackcareError
from ._model import Example, Expectation
from ._recommender import Recommender
from ._result import Recommendation


@attrs.frozen
class ExampleFailure:
    """One example that did not hold, with every way it failed."""

    file: str
    name: str
    messages: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.file}: example {self.name!r}: " + "; ".join(self.messages)


@attrs.frozen
class RuleTestReport:
    """The outcome of running examples over a set of rules."""

    examples: int
    failures: tuple[ExampleFailure, ...]
    rules: tuple[str, ...]
    uncovered: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def coverage(self) -> float:
        return 1.0 if not self.rules else 1 - len(self.uncovered) / len(self.rules)

    def summary(self) -> str:
        lines = [str(f) for f in self.failures]
        lines.append(
            f"{self.examples - len(self.failures)} passed, {len(self.failures)} failed; "
            f"rule coverage {self.coverage:.0%} ({len(self.rules) - len(self.uncovered)}/{len(self.rules)} rules fired)"
        )
        if self.uncovered:
            lines.append("rules no example fires: " + ", ".join(self.uncovered))
        return "\n".join(lines)


def check(expect: Expectation, result: Recommendation) -> list[str]:
    """Every way ``result`` falls short of ``expect`` (empty when it holds)."""
    ids = result.technique_ids()
    out = []
    if expect.first is not None and (not ids or ids[0] != expect.first):
        out.append(f"expected {expect.first} first, got {ids[:3]}")
    missing = [t for t in expect.order if t not in ids]
    if missing:
        out.append(f"expected {missing} to be recommended, got {ids}")
    elif [t for t in ids if t in expect.order] != list(expect.order):
        out.append(f"expected order {list(expect.order)}, got {ids}")
    top = ids[: expect.top_n]
    for tech in expect.in_top:
        if tech not in top:
            out.append(f"expected {tech} in the top {expect.top_n}, got {top}")
    for tech in expect.absent:
        if tech in ids:
            out.append(f"expected {tech} not to be recommended, got {ids}")
    excluded = [e.technique for e in result.excluded]
    for tech in expect.excluded:
        if tech not in excluded:
            out.append(f"expected {tech} to be excluded, excluded are {excluded}")
    not_recommended = [n.technique for n in result.not_recommended]
    for tech in expect.not_recommended:
        if tech not in not_recommended:
            out.append(f"expected {tech} to be not recommended, not recommended are {not_recommended}")
    for rule in expect.fired:
        if rule not in result.fired:
            out.append(f"expected rule {rule} to fire; it did not")
    for rule in expect.not_fired:
        if rule in result.fired:
            out.append(f"expected rule {rule} not to fire; it did")
    if expect.referral is not None:
        got = result.referral.urgency if result.referral else "none"
        if got != expect.referral:
            out.append(f"expected referral {expect.referral}, got {got}")
    if expect.no_techniques is not None and expect.no_techniques != (not ids):
        out.append("expected no techniques" if expect.no_techniques else "expected some techniques, got none")
    for fact, value in expect.facts:
        if value not in result.facts.get(fact, ()):
            out.append(f"expected derived fact {fact} = {value!r}, got {list(result.facts.get(fact, ()))}")
    return out


def run_examples(
    recommender: Recommender, packs: Iterable[str] | None = None
) -> RuleTestReport:
    """Run the examples of ``packs`` (default: every pack) and measure coverage of their rules."""
    wanted = set(packs) if packs is not None else None

    def included(origin_pack: str | None) -> bool:
        return wanted is None or origin_pack in wanted

    rb = recommender.rulebase
    examples: list[Example] = [e for e in rb.examples if included(e.origin.pack if e.origin else None)]
    rules = tuple(r.id for r in rb.rules if included(r.origin.pack if r.origin else None))
    fired: set[str] = set()
    failures = []
    for ex in examples:
        file = str(ex.origin) if ex.origin else "<rules>"
        try:
            result = recommender.recommend(dict(ex.profile))
        except BackcareError as exc:
            failures.append(ExampleFailure(file, ex.name, (f"profile rejected: {exc}",)))
            continue
        fired.update(result.fired)
        problems = check(ex.expect, result)
        if problems:
            failures.append(ExampleFailure(file, ex.name, tuple(problems)))
    return RuleTestReport(
        examples=len(examples),
        failures=tuple(failures),
        rules=rules,
        uncovered=tuple(r for r in rules if r not in fired),
    )
