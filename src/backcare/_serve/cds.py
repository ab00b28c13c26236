"""CDS Hooks: the discovery document, the service request, and the cards backcare answers with.

Follows the CDS Hooks specification (https://cds-hooks.hl7.org): a
``patient-view`` service whose prefetch brings the Patient, their Conditions,
pain-score Observations and MedicationStatements; a response of cards whose
``summary`` is under 140 characters, whose ``indicator`` is ``critical`` for an
emergency referral, ``warning`` for an urgent one or a caution, and ``info``
otherwise; the referral always first, and no technique card when it
withholds techniques. Optional attributes are omitted rather than sent empty,
as the specification asks. backcare suggests no change to the record, so its
cards carry links, not suggestions.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .._model import EVIDENCE_MEANING, Rulebase
from .._recommender import Recommender
from .._result import Recommendation, Step
from .fhir import CodeMap, FHIRError, Reading, parse_prefetch, read

SERVICE_ID = "backcare-massage"
HOOK = "patient-view"
NOT_A_DEVICE = ("backcare gives information; it is not a medical device, does not diagnose or treat, "
                "and does not replace a clinician's judgement.")
MAX_SUMMARY = 139  # the specification: a summary of fewer than 140 characters

#: Prefetch key -> the resource type its value holds (a Bundle of them, or the Patient itself).
PREFETCH_TYPES = {
    "patient": "Patient",
    "conditions": "Condition",
    "observations": "Observation",
    "medications": "MedicationStatement",
}


class PreconditionFailed(ValueError):
    """The request lacks prefetch backcare needs and cannot fetch itself: HTTP 412."""


def discovery(codes: CodeMap) -> dict[str, Any]:
    """The ``GET /cds-services`` document."""
    return {
        "services": [
            {
                "hook": HOOK,
                "id": SERVICE_ID,
                "title": "backcare: massage techniques for back pain",
                "description": (
                    "Reads the patient's age, conditions, pain score and medicines and returns, as cards, "
                    "any referral the red flags demand (first) and the massage techniques backcare ranks, "
                    "each with its rationale, evidence level and sources. " + NOT_A_DEVICE
                ),
                "prefetch": {
                    "patient": "Patient/{{context.patientId}}",
                    "conditions": "Condition?patient={{context.patientId}}",
                    "observations": f"Observation?patient={{{{context.patientId}}}}&{codes.prefetch_observation_query()}",
                    "medications": "MedicationStatement?patient={{context.patientId}}",
                },
            }
        ]
    }


def check_request(body: Any) -> tuple[str, Mapping[str, Any]]:
    """The patient id and prefetch of a service request, or :class:`FHIRError` saying what is wrong."""
    if not isinstance(body, dict):
        raise FHIRError(f"a CDS Hooks request must be a JSON object, got {type(body).__name__}")
    for key, kind in (("hook", str), ("hookInstance", str), ("context", dict)):
        if key not in body:
            raise FHIRError(f"the request has no {key!r} (required by CDS Hooks)")
        if not isinstance(body[key], kind) or not body[key]:
            raise FHIRError(f"request {key!r} must be a non-empty {'string' if kind is str else 'object'}")
    if body["hook"] != HOOK:
        raise FHIRError(f"this service answers the {HOOK!r} hook, not {body['hook']!r}")
    patient_id = body["context"].get("patientId")
    if not isinstance(patient_id, str) or not patient_id:
        raise FHIRError("context.patientId must be a non-empty string (the patient-view hook's context)")
    prefetch = body.get("prefetch")
    if prefetch is not None and not isinstance(prefetch, dict):
        raise FHIRError("request 'prefetch' must be an object")
    missing = [k for k in PREFETCH_TYPES if k not in (prefetch or {})]
    if missing:
        # Without them backcare could miss a red flag or an anticoagulant; it fetches nothing itself.
        raise PreconditionFailed(
            "the request lacks prefetch " + ", ".join(repr(k) for k in missing)
            + "; backcare does not query FHIR servers itself, so it needs every prefetch key "
            "(null where the record has no data)"
        )
    return patient_id, prefetch or {}


def answer(
    body: Any, recommender: Recommender, codes: CodeMap, today: dt.date, base_url: str
) -> tuple[dict[str, Any], Reading, Recommendation]:
    """Cards for a service request. Raises FHIRError, PreconditionFailed or ProfileError on bad input."""
    patient_id, prefetch = check_request(body)
    parsed = parse_prefetch(prefetch, PREFETCH_TYPES)
    reading = read(parsed, patient_id, codes, recommender.fields, today)
    result = recommender.recommend(reading.profile)
    return {"cards": cards(result, reading, recommender.rulebase, base_url)}, reading, result


# ---------------------------------------------------------------------------
# Cards


def cards(result: Recommendation, reading: Reading, rb: Rulebase, base_url: str) -> list[dict[str, Any]]:
    """The referral first, then cautions, then one card per technique, then notes."""
    base = base_url.rstrip("/")
    record = _record_section(reading)
    footer = [*record, "---", md(result.disclaimer), md(NOT_A_DEVICE)]
    out: list[dict[str, Any]] = []
    withheld = result.referral is not None and result.referral.withholds_techniques
    if result.referral is not None:
        out.append(_referral_card(result, rb, base, footer))
    if (result.excluded or result.warnings) and not withheld:
        out.append(_caution_card(result, base, footer))
    if not withheld:
        n = len(result.techniques)
        for rank, t in enumerate(result.techniques, 1):
            steps = list(t.rationale)
            detail = [
                f"**{md(t.name)}**: {md(t.description)}",
                f"Rank {rank} of {n}; score {t.score:g}; evidence: **{t.evidence}** "
                f"({md(EVIDENCE_MEANING.get(t.evidence, t.evidence))}), the weakest link of its support. "
                "Points by evidence level: "
                + ", ".join(f"{level} {points:g}" for level, points in t.score_by_evidence.items()) + ".",
                "Why:",
                *_step_lines(steps),
                *footer,
            ]
            out.append(_card(
                f"Consider {t.name} (rank {rank} of {n}, evidence: {t.evidence})",
                "info", detail, steps, base,
            ))
    if result.notes:
        steps = list(result.notes)
        out.append(_card("Notes on this recommendation", "info",
                         ["Notes:", *_step_lines(steps), *footer], steps, base))
    if not out:
        out.append(_card(
            "backcare: no massage technique is indicated by the data in the record", "info",
            ["Nothing in the record that backcare reads indicates a massage technique.", *footer], [], base,
        ))
    return out


def _referral_card(result: Recommendation, rb: Rulebase, base: str, footer: list[str]) -> dict[str, Any]:
    r = result.referral
    assert r is not None
    indicator = {"emergency": "critical", "urgent": "warning"}.get(r.urgency, "info")
    signs = [rb.red_flags[f].description if f in rb.red_flags else f for f in r.flags]
    detail = [
        f"**See a clinician ({r.urgency}).** {md(r.action)}",
        f"Possible {md(', '.join(r.suspected))}. Warning signs: " + "; ".join(md(s) for s in signs) + ".",
        "From the record: " + "; ".join(md(p.text) for p in r.triggers) + ".",
        f"**{md(r.meanwhile)}**",
    ]
    steps = list(r.rationale)
    if r.withholds_techniques:
        if result.warnings:  # no caution card follows a withholding referral: its warnings go here
            detail += ["Warnings:", *_step_lines(result.warnings)]
            steps += result.warnings
    detail += ["Why:", *_step_lines(r.rationale), *footer]
    summary = f"{r.urgency.capitalize()} referral: possible {', '.join(r.suspected)}"
    return _card(summary, indicator, detail, steps, base)


def _caution_card(result: Recommendation, base: str, footer: list[str]) -> dict[str, Any]:
    detail: list[str] = []
    steps: list[Step] = []
    if result.excluded:
        detail.append("Techniques that must not be used:")
        for e in result.excluded:
            reasons = "; ".join(f"{md(s.title)} [{md(s.source)}]" for s in e.reasons)
            detail.append(f"- **{md(e.name)}**: {reasons}")
            steps += e.reasons
    if result.warnings:
        detail.append("Warnings:")
        detail += _step_lines(list(result.warnings))
        steps += result.warnings
    names = len(result.excluded)
    summary = (f"Caution: {names} technique{'s' if names != 1 else ''} ruled out"
               + (" and warnings to heed" if result.warnings else "") if names
               else "Caution: warnings to heed before any massage")
    return _card(summary, "warning", [*detail, *footer], steps, base)


def _step_lines(steps: Sequence[Step]) -> list[str]:
    lines = []
    for s in steps:
        line = f"- **{md(s.title)}**: {md(s.text)} (evidence: {s.evidence}; source: {md(s.citation)})"
        if s.caveat:
            line += f" But: {md(s.caveat)}" + (f" ({md(s.caveat_citation)})" if s.caveat_citation else "")
        lines.append(line)
    return lines


def _record_section(reading: Reading) -> list[str]:
    out: list[str] = []
    for title, items in (("From the record:", reading.used),
                         ("Codes backcare does not know (not used, never guessed):", reading.unknown),
                         ("In the record but not used:", reading.unused)):
        if items:
            out.append(title)
            out += [f"- {md(i)}" for i in items]
    if not reading.used:
        out.append("Nothing in the record mapped to a backcare profile field.")
    return out


def _card(summary: str, indicator: str, detail: list[str], steps: Iterable[Step], base: str) -> dict[str, Any]:
    cited: dict[str, str] = {}
    for s in steps:
        cited.setdefault(s.source, s.citation)
        if s.caveat_source and s.caveat_citation:
            cited.setdefault(s.caveat_source, s.caveat_citation)
    if len(summary) > MAX_SUMMARY:
        summary = summary[: MAX_SUMMARY - 1].rstrip() + "…"
    first = next(iter(cited.items()), None)
    source: dict[str, Any] = (
        {"label": _short(f"backcare rules; source: {first[1]}", 120), "url": f"{base}/sources#source-{first[0]}"}
        if first else {"label": "backcare rules", "url": f"{base}/sources"}
    )
    card: dict[str, Any] = {
        "summary": summary,
        "indicator": indicator,
        "detail": "\n\n".join(_join_lists(detail)),
        "source": source,
    }
    if cited:
        card["links"] = [
            {"label": _short(citation, 120), "url": f"{base}/sources#source-{sid}", "type": "absolute"}
            for sid, citation in cited.items()
        ]
    return card


def _join_lists(lines: list[str]) -> list[str]:
    """Paragraphs for the markdown: consecutive list items stay one list."""
    out: list[str] = []
    for line in lines:
        if line.startswith("- ") and out and out[-1].split("\n")[-1].startswith("- "):
            out[-1] += "\n" + line
        else:
            out.append(line)
    return out


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~])")


def md(text: str) -> str:
    """Text as literal GitHub-flavoured markdown: rule texts and record displays must not become markup."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))
