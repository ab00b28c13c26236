"""Helpers for the serve extra's tests: an in-process client, and FHIR test data."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import httpx

TODAY = dt.date(2026, 6, 15)
PATIENT = "p1"


def call(app: Any, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request to an ASGI app, in process, through httpx."""

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.request(method, url, **kwargs)
            await response.aread()
            return response

    return asyncio.run(go())


def coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"


def condition(cid: str, system: str, code: str, display: str | None = None, *, clinical: str | None = "active",
              verification: str | None = None, onset: str | None = None,
              patient: str = PATIENT) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Condition", "id": cid, "subject": {"reference": f"Patient/{patient}"},
        "code": {"coding": [coding(system, code, display)]},
    }
    if clinical:
        res["clinicalStatus"] = {"coding": [coding(CLINICAL, clinical)]}
    if verification:
        res["verificationStatus"] = {"coding": [coding(VERIFICATION, verification)]}
    if onset:
        res["onsetDateTime"] = onset
    return res


def medication(mid: str, code: str, display: str | None = None, status: str = "active") -> dict[str, Any]:
    return {"resourceType": "MedicationStatement", "id": mid, "status": status,
            "subject": {"reference": f"Patient/{PATIENT}"},
            "medicationCodeableConcept": {"coding": [coding(RXNORM, code, display)]}}


def pain(oid: str, value: Any, when: str = "2026-06-14T09:00:00Z", status: str = "final") -> dict[str, Any]:
    res: dict[str, Any] = {"resourceType": "Observation", "id": oid, "status": status,
                           "subject": {"reference": f"Patient/{PATIENT}"},
                           "code": {"coding": [coding(LOINC, "72514-3")]}, "effectiveDateTime": when}
    if isinstance(value, int):
        res["valueInteger"] = value
    else:
        res["valueQuantity"] = {"value": value, "unit": "{score}"}
    return res


def bundle(*resources: dict[str, Any]) -> dict[str, Any] | None:
    if not resources:
        return None
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
            "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources]}


def request(*, birth: str | None = "1980-02-01", conditions: list[dict[str, Any]] = (),  # type: ignore[assignment]
            observations: list[dict[str, Any]] = (), medications: list[dict[str, Any]] = (),  # type: ignore[assignment]
            ) -> dict[str, Any]:
    patient = {"resourceType": "Patient", "id": PATIENT, "birthDate": birth} if birth else None
    if patient is not None and birth is None:
        del patient["birthDate"]
    return {
        "hook": "patient-view",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {"userId": "Practitioner/example", "patientId": PATIENT},
        "prefetch": {
            "patient": patient,
            "conditions": bundle(*conditions),
            "observations": bundle(*observations),
            "medications": bundle(*medications),
        },
    }
