"""What :func:`backcare.recommend` returns.

Modelled on a CDS Hooks card: each recommendation carries a summary, the
source behind it and an indicator of how strong it is, and safety findings
(referral, exclusions, warnings) travel in the same object so that no caller
can show the ranking without them.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from ._model import EVIDENCE_MEANING
from ._profile import Scalar
from ._text import escape_controls

DISCLAIMER = (
    "This is information, not medical advice. It does not replace assessment by a "
    "qualified clinician; if your pain is severe, getting worse, or you have any of the "
    "warning signs listed by backcare.red_flags(), see a clinician."
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
class Step:
    """One rule firing in a chain of reasoning, with its source and evidence."""

    rule_id: str
    title: str
    text: str
    conclusion: str
    premises: tuple[str, ...]
    source: str
    citation: str
    evidence: str
    passage: str | None = None
    caveat: str | None = None
    caveat_source: str | None = None
    caveat_citation: str | None = None


@attrs.frozen
class RankedTechnique:
    """A recommended technique: its score, evidence level and rationale."""

    id: str
    name: str
    description: str
    score: float
    evidence: str
    rationale: tuple[Step, ...]


@attrs.frozen
class Exclusion:
    """A technique that must not be used, with every rule that says so."""

    technique: str
    name: str
    reasons: tuple[Step, ...]


@attrs.frozen
class Referral:
    """The person should see a clinician, and how soon.

    ``emergency`` and ``urgent`` referrals withhold every technique;
    ``routine`` ones come alongside the ranking.
    """

    urgency: str
    suspected: tuple[str, ...]
    triggers: tuple[str, ...]
    action: str
    sources: tuple[str, ...]
    rationale: tuple[Step, ...]

    @property
    def withholds_techniques(self) -> bool:
        return self.urgency in ("emergency", "urgent")


@attrs.frozen
class Recommendation:
    """A ranked, explained list of techniques, with safety findings beside it.

    Equal profiles give equal recommendations, and :meth:`to_dict` is the
    same byte for byte once dumped with ``sort_keys``.
    """

    profile: Mapping[str, Any] = attrs.field(converter=_freeze_mapping)
    techniques: tuple[RankedTechnique, ...]
    excluded: tuple[Exclusion, ...]
    referral: Referral | None
    facts: Mapping[str, tuple[Scalar, ...]] = attrs.field(converter=_freeze_mapping)
    fired: tuple[str, ...]
    notes: tuple[Step, ...] = ()
    warnings: tuple[Step, ...] = ()
    safety_overrides: tuple[str, ...] = ()
    disclaimer: str = DISCLAIMER

    def technique_ids(self) -> list[str]:
        """The recommended technique ids, best first."""
        return [t.id for t in self.techniques]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe data: dicts, lists, strings, numbers, booleans, None."""
        return _plain(self)  # type: ignore[no-any-return]

    def to_json(self) -> str:
        """The :meth:`to_dict` form as canonical, strict JSON text (no NaN or Infinity)."""
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False, indent=2, allow_nan=False)

    def explain(self) -> str:
        """A readable account of the result, for a person rather than a program.

        Control characters in any text (a rule pack's, a profile's) are shown
        as escapes such as ``\\x1b``: printed to a terminal, the account can
        never move the cursor or clear the screen.
        """
        out: list[str] = ["backcare recommendation", "=" * 23, ""]
        if self.safety_overrides:
            out.append("WARNING: safety rules were overridden by the rule packs in use:")
            out += [f"  - {o}" for o in self.safety_overrides]
            out.append("")
        if self.referral:
            r = self.referral
            out.append(f"SEE A CLINICIAN ({r.urgency.upper()}): {r.action}")
            out.append(f"  Possible {', '.join(r.suspected)}; triggered by {', '.join(r.triggers)}.")
            if r.withholds_techniques:
                out.append("  No massage technique is recommended until a clinician has assessed you.")
            out += _steps(r.rationale, "  ")
            out.append("")
        if self.techniques:
            out.append("Techniques, best first:")
            for i, t in enumerate(self.techniques, 1):
                out.append(f"{i:2d}. {t.name} - score {t.score:g}, evidence: {t.evidence} "
                           f"({EVIDENCE_MEANING[t.evidence]})")
                out += _steps(t.rationale, "      ")
        elif not self.referral:
            out.append("No technique is indicated by this profile.")
        if self.excluded:
            out += [*_gap(out), "Excluded:"]
            # Techniques excluded for the same reasons are listed together.
            groups: dict[tuple[Step, ...], list[str]] = {}
            for e in self.excluded:
                groups.setdefault(e.reasons, []).append(e.name)
            for reasons, names in groups.items():
                out += textwrap.wrap("- " + ", ".join(names) + ":", 79, initial_indent="  ",
                                     subsequent_indent="    ")
                out += _steps(reasons, "    ")
        for title, items in (("Warnings", self.warnings), ("Notes", self.notes)):
            if items:
                out += [*_gap(out), f"{title}:"]
                out += _steps(items, "  ")
        if self.facts:
            out += ["", "Derived facts: " + "; ".join(
                f"{k} = {', '.join(_show(v) for v in vs)}" for k, vs in self.facts.items())]
        sources = _sources(self)
        if sources:
            out += ["", "Sources:", *sources]
        out += ["", textwrap.fill(self.disclaimer, 79)]
        return escape_controls("\n".join(out))


def _gap(lines: list[str]) -> list[str]:
    """One blank line before a new section, unless the last section already ended with one."""
    return [""] if lines and lines[-1] else []


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _steps(steps: tuple[Step, ...], indent: str) -> list[str]:
    lines: list[str] = []

    def body(text: str) -> list[str]:
        return textwrap.wrap(text, 79, initial_indent=indent + "  ", subsequent_indent=indent + "  ")

    for s in steps:
        lines += textwrap.wrap(f"- [{s.rule_id}] {s.title}: {s.conclusion}", 79,
                               initial_indent=indent, subsequent_indent=indent + "  ")
        lines += body(f"{s.text} [{s.source}; evidence: {s.evidence}]")
        if s.caveat:
            cite = f" [{s.caveat_source}]" if s.caveat_source else ""
            lines += body(f"But: {s.caveat}{cite}")
    return lines


def _sources(result: Recommendation) -> list[str]:
    """Each cited source once, in id order, for the end of :meth:`explain`."""
    cited: dict[str, str] = {}
    steps = [*result.notes, *result.warnings]
    steps += [s for t in result.techniques for s in t.rationale]
    steps += [s for e in result.excluded for s in e.reasons]
    if result.referral:
        steps += result.referral.rationale
    for s in steps:
        cited[s.source] = s.citation
        if s.caveat_source and s.caveat_citation:
            cited[s.caveat_source] = s.caveat_citation
    lines = []
    for key, citation in sorted(cited.items()):
        lines += textwrap.wrap(f"[{key}] {citation}", 79, subsequent_indent="    ")
    return lines


def _plain(value: Any) -> Any:
    if attrs.has(type(value)):
        return {a.name: _plain(getattr(value, a.name)) for a in attrs.fields(type(value))}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value
