"""Running the examples that rule files carry, and measuring rule coverage.

An example is a unit test written next to the rules it exercises: a profile
and what its result must show. Coverage counts the rules of the packs under
test that no example fires, so an untested rule is visible. The same runner
serves ``backcare rules test`` and the pytest plugin, so both judge an
example alike.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs

from ._errors import BackcareError, Problem, RuleError
from ._loader import default_rules_path
from ._loader.read import PackText, _read_pack
from ._model import Example, Expectation
from ._loader import pack_digest as _digest
from ._recommender import Recommender
from ._result import Recommendation


@attrs.frozen
class ExampleFailure:
    """One example that did not hold, with every way it failed and the rules that fired."""

    file: str
    name: str
    messages: tuple[str, ...]
    fired: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.file}: example {self.name!r}: " + "; ".join(self.messages)


@attrs.frozen
class ExampleOutcome:
    """What running one example gave: passed when ``messages`` is empty."""

    file: str
    line: int | None
    name: str
    pack: str | None
    messages: tuple[str, ...]
    fired: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.messages

    @property
    def where(self) -> str:
        return self.file if self.line is None else f"{self.file}:{self.line}"

    def describe(self) -> str:
        """The failure as a person reads it: expected against actual, then the rules that fired."""
        lines = [f"{self.where}: example {self.name!r} failed:"]
        lines += [f"  {m}" for m in self.messages]
        lines.append("  rules fired: " + (", ".join(self.fired) if self.fired else "none"))
        return "\n".join(lines)


@attrs.frozen
class RuleTestReport:
    """The outcome of running examples over a set of rules.

    ``packs`` pairs each pack asked for with how many of its examples ran.
    ``safety_overrides`` are the safety rules and protected entries the packs
    disabled or replaced (only with ``allow_safety_overrides``): a passing
    run says so, so that CI never hides that a pack switched safety off.
    """

    examples: int
    failures: tuple[ExampleFailure, ...]
    rules: tuple[str, ...]
    uncovered: tuple[str, ...]
    outcomes: tuple[ExampleOutcome, ...] = ()
    packs: tuple[tuple[str, int], ...] = ()
    safety_overrides: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def coverage(self) -> float:
        return 1.0 if not self.rules else 1 - len(self.uncovered) / len(self.rules)

    def summary(self, verbose: bool = False) -> str:
        lines = []
        for outcome in self.outcomes:
            if not outcome.passed:
                lines.append(outcome.describe())
            elif verbose:
                lines.append(f"{outcome.where}: example {outcome.name!r} passed")
        covered = (f"rule coverage {self.coverage:.0%} ({len(self.rules) - len(self.uncovered)}/{len(self.rules)} "
                   "rules fired)" if self.rules else "no rules of their own to cover")
        lines.append(f"{self.examples - len(self.failures)} passed, {len(self.failures)} failed; {covered}")
        if self.uncovered:
            lines.append("rules no example fires: " + ", ".join(self.uncovered))
        lines += [f"warning: safety override: {note}" for note in self.safety_overrides]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-safe data, for ``rules test --format json``."""
        return {
            "examples": self.examples,
            "passed": self.examples - len(self.failures),
            "failed": len(self.failures),
            "coverage": round(self.coverage, 6),
            "rules": list(self.rules),
            "uncovered": list(self.uncovered),
            "packs": [{"pack": name, "examples": count} for name, count in self.packs],
            "safety_overrides": list(self.safety_overrides),
            "results": [
                {"name": o.name, "file": o.file, "line": o.line, "pack": o.pack,
                 "outcome": "passed" if o.passed else "failed", "messages": list(o.messages), "fired": list(o.fired)}
                for o in self.outcomes
            ],
        }

    def junit_xml(self) -> str:
        """The report as JUnit XML: one test case per example, with the coverage as properties."""
        suite = ET.Element("testsuite", name="backcare rules test", tests=str(self.examples),
                           failures=str(len(self.failures)), errors="0", skipped="0")
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="rule_coverage", value=f"{self.coverage:.6f}")
        ET.SubElement(props, "property", name="rules_uncovered", value=" ".join(self.uncovered))
        for note in self.safety_overrides:
            ET.SubElement(props, "property", name="safety_override", value=note)
        for o in self.outcomes:
            case = ET.SubElement(suite, "testcase", classname=o.file, name=o.name, file=o.file,
                                 line=str(o.line or 0))
            if not o.passed:
                failure = ET.SubElement(case, "failure", message="; ".join(o.messages))
                failure.text = o.describe()
        ET.indent(suite)
        return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False)


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


def run_example(recommender: Recommender, example: Example) -> ExampleOutcome:
    """Recommend for one example's profile and judge the result against its expectations."""
    origin = example.origin
    file, line, pack = (origin.file, origin.line, origin.pack) if origin else ("<rules>", None, None)
    try:
        result = recommender.recommend(dict(example.profile))
    except BackcareError as exc:
        return ExampleOutcome(file, line, example.name, pack, (f"profile rejected: {exc}",), ())
    return ExampleOutcome(file, line, example.name, pack, tuple(check(example.expect, result)), result.fired)


def same_pack(a: str, b: str) -> bool:
    """Whether two pack names are one pack: the same text, or paths to the same place.

    ``my-pack``, ``my-pack/``, ``./my-pack`` and its absolute path are one pack.
    """
    if a == b:
        return True
    try:
        return Path(a).resolve() == Path(b).resolve()
    except (OSError, RuntimeError):  # a symlink loop: the names differ, so do the packs
        return False


def _read(path: str | Path) -> PackText:
    problems: list[Problem] = []
    text = _read_pack(Path(path), problems)
    if problems or text is None:
        raise RuleError(problems)
    return text


def read_packs(paths: Sequence[str | Path], *, include_default: bool = True) -> tuple[list[PackText], list[str]]:
    """The packs under test, each read once, and the names to report them by.

    A path holding the default pack's own files (a checkout's ``rules/``
    beside an installed backcare) is the default pack: it is not loaded a
    second time, and its name is the default pack's. Returns the extra packs
    to load on top of the default and every pack's name, in order.
    """
    default_name = str(default_rules_path())
    default_digest = _digest(_read(default_name)) if include_default else None
    extra: list[PackText] = []
    names: list[str] = []
    for path in paths:
        text = _read(path)
        if default_digest is not None and _digest(text) == default_digest:
            name = default_name
        else:
            name = text.name
            if all(p.name != name for p in extra):
                extra.append(text)
        if name not in names:
            names.append(name)
    return extra, names


def select(examples: Iterable[Example], keyword: str | None) -> list[Example]:
    """The examples whose name contains ``keyword`` (any case); all of them without one."""
    if not keyword:
        return list(examples)
    wanted = keyword.casefold()
    return [e for e in examples if wanted in e.name.casefold()]


def run_examples(
    recommender: Recommender, packs: Sequence[str] | None = None, *, keyword: str | None = None
) -> RuleTestReport:
    """Run the examples of ``packs`` (default: every pack) and measure coverage of their rules.

    Packs are matched by name or by the place their path resolves to, so any
    spelling of a pack's path selects it. ``keyword`` keeps the examples
    whose name contains it.
    """
    rb = recommender.rulebase

    def owner(origin_pack: str | None) -> str | None:
        """The requested pack an entry belongs to (the entry's own pack when all are requested)."""
        if packs is None:
            return origin_pack
        for name in packs:
            if origin_pack is not None and same_pack(origin_pack, name):
                return name
        return None

    chosen = [(e, owner(e.origin.pack if e.origin else None)) for e in rb.examples]
    examples = select((e for e, pack in chosen if packs is None or pack is not None), keyword)
    rules = tuple(r.id for r in rb.rules if packs is None or owner(r.origin.pack if r.origin else None))
    outcomes = tuple(run_example(recommender, ex) for ex in examples)
    fired = {rule for o in outcomes for rule in o.fired}
    counts = {name: 0 for name in (packs or ())}
    for ex in examples:
        pack = owner(ex.origin.pack if ex.origin else None)
        if pack is not None:
            counts[pack] = counts.get(pack, 0) + 1
    return RuleTestReport(
        examples=len(outcomes),
        failures=tuple(ExampleFailure(o.where, o.name, o.messages, o.fired) for o in outcomes if not o.passed),
        rules=rules,
        uncovered=tuple(r for r in rules if r not in fired),
        outcomes=outcomes,
        packs=tuple(counts.items()),
        safety_overrides=rb.safety_overrides,
    )
