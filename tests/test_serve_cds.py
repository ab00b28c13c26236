"""The CDS Hooks service: discovery, FHIR prefetch to profile, cards, and refusals.

Every request sent and every response received is validated against JSON
Schemas written from the CDS Hooks specification (tests/cds_hooks_schema.py).
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("starlette", reason="the serve extra is not installed")
pytest.importorskip("fhir.resources", reason="the serve extra is not installed")

import jsonschema  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import backcare  # noqa: E402
from backcare._errors import RuleError  # noqa: E402
from backcare._serve import create_app  # noqa: E402
from backcare._serve.cds import NOT_A_DEVICE, SERVICE_ID, md  # noqa: E402
from backcare._serve.fhir import CodeMap  # noqa: E402

from . import cds_hooks_schema as schema  # noqa: E402
from .servekit import ICD10, SNOMED, TODAY, call, condition, medication, pain, request  # noqa: E402

URL = f"/cds-services/{SERVICE_ID}"


@pytest.fixture(scope="module")
def app():
    return create_app(backcare.Recommender(cache_size=0), today=lambda: TODAY)


def send(app, body):
    """POST a request that must itself be valid CDS Hooks; validate a 200's response too."""
    jsonschema.Draft202012Validator(schema.REQUEST).validate(body)
    jsonschema.Draft202012Validator(schema.PATIENT_VIEW_CONTEXT).validate(body["context"])
    response = call(app, "POST", URL, json=body)
    if response.status_code == 200:
        jsonschema.Draft202012Validator(schema.RESPONSE).validate(response.json())
    return response


def technique_cards(cards):
    return [c for c in cards if c["summary"].startswith("Consider ")]


def test_schemas_are_valid_json_schemas():
    for s in (schema.DISCOVERY, schema.REQUEST, schema.RESPONSE):
        jsonschema.Draft202012Validator.check_schema(s)


def test_the_schema_catches_what_the_specification_forbids():
    """The response schema is not vacuous: each broken card is refused."""
    good = {"summary": "s", "indicator": "info", "source": {"label": "x"}}
    jsonschema.validate({"cards": [good]}, schema.RESPONSE)
    for bad in ({**good, "summary": "x" * 140}, {**good, "indicator": "urgent"}, {**good, "source": {}},
                {**good, "links": []}, {**good, "detail": None},
                {**good, "suggestions": [{"label": "do it"}]},
                {**good, "links": [{"label": "l", "url": "https://e.org", "type": "absolute", "appContext": "x"}]}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"cards": [bad]}, schema.RESPONSE)


def test_discovery_lists_the_patient_view_service_with_its_prefetch(app):
    response = call(app, "GET", "/cds-services")
    assert response.status_code == 200
    data = response.json()
    jsonschema.validate(data, schema.DISCOVERY)
    (service,) = data["services"]
    assert service["hook"] == "patient-view" and service["id"] == SERVICE_ID
    assert set(service["prefetch"]) == {"patient", "conditions", "observations", "medications"}
    assert service["prefetch"]["patient"] == "Patient/{{context.patientId}}"
    assert "code=http://loinc.org|72514-3" in service["prefetch"]["observations"]


def test_cauda_equina_sign_gives_a_critical_card_first_and_no_technique_card(app):
    body = request(conditions=[condition("c1", SNOMED, "267064002", "Retention of urine")],
                   observations=[pain("o1", 4)])
    cards = send(app, body).json()["cards"]
    assert cards[0]["indicator"] == "critical"
    assert "cauda equina" in cards[0]["summary"]
    assert technique_cards(cards) == []
    assert "Every massage technique is withheld until a clinician has assessed you." in cards[0]["detail"]


def test_osteoporosis_with_a_vertebral_fracture_gives_a_warning_card_first_and_no_technique_card(app):
    body = request(conditions=[condition("c1", SNOMED, "64859006", "Osteoporosis"),
                               condition("c2", SNOMED, "203450003", "Osteoporotic fracture of lumbar vertebra")])
    cards = send(app, body).json()["cards"]
    assert cards[0]["indicator"] == "warning"
    assert "spinal fracture" in cards[0]["summary"]
    assert technique_cards(cards) == []


def test_anticoagulants_back_pain_onset_and_pain_score_reach_the_profile(app):
    body = request(
        birth="1980-02-01",
        conditions=[condition("c1", ICD10, "M54.50", "Low back pain, unspecified", onset="2026-01-26")],
        observations=[pain("o1", 5, "2026-06-01T10:00:00Z"), pain("o2", 6, "2026-06-14T10:00:00Z")],
        medications=[medication("m1", "855332", "warfarin sodium 5 MG Oral Tablet")],
    )
    cards = send(app, body).json()["cards"]
    expected = backcare.Recommender().recommend(
        {"age": 46, "pain_weeks": 20, "pain_intensity": 6, "conditions": ["anticoagulants"]})
    shown = [c["summary"] for c in technique_cards(cards)]
    assert shown == [f"Consider {t.name} (rank {i} of {len(expected.techniques)}, evidence: {t.evidence})"
                     for i, t in enumerate(expected.techniques, 1)]
    caution = next(c for c in cards if c["summary"].startswith("Caution"))
    assert caution["indicator"] == "warning" and "Deep pressure" in caution["detail"]
    detail = cards[0]["detail"]
    assert "gives age = 46" in detail and "gives pain\\_weeks = 20" in detail
    assert "Observation o2 gives pain\\_intensity = 6" in detail  # the latest reading


def test_every_card_says_information_not_a_medical_device(app):
    body = request(conditions=[condition("c1", ICD10, "M54.50", onset="2026-05-01")])
    cards = send(app, body).json()["cards"]
    assert cards
    for card in cards:
        assert md(backcare.DISCLAIMER) in card["detail"] and md(NOT_A_DEVICE) in card["detail"]


def test_unknown_codes_are_listed_never_guessed(app):
    strange = condition("c9", SNOMED, "123456789", "Something <script>alert(1)</script> *bold*")
    body = request(conditions=[strange], medications=[medication("m9", "99999999", "unheard-of pill")])
    data = send(app, body).json()
    known = backcare.Recommender().recommend({"age": 46})
    assert [c["summary"] for c in technique_cards(data["cards"])] == [
        f"Consider {t.name} (rank {i} of {len(known.techniques)}, evidence: {t.evidence})"
        for i, t in enumerate(known.techniques, 1)] or not known.techniques
    detail = data["cards"][0]["detail"]
    assert "Codes backcare does not know" in detail
    assert "SNOMED CT 123456789" in detail and "RxNorm 99999999" in detail
    assert "<script>" not in detail and "\\<script\\>" in detail and "\\*bold\\*" in detail


def test_resolved_refuted_and_stopped_records_are_not_used_but_listed(app):
    body = request(conditions=[condition("c1", SNOMED, "64859006", clinical="resolved"),
                               condition("c2", SNOMED, "267064002", verification="entered-in-error"),
                               condition("c3", SNOMED, "363346000", clinical="resolved")],
                   medications=[medication("m1", "855332", status="completed")])
    data = send(app, body).json()
    first = data["cards"][0]
    # A cancer in the past is still the history-of-cancer red flag; the rest is not used.
    assert first["indicator"] == "warning" and "malignancy" in first["summary"]
    assert "clinical status resolved" in first["detail"]
    assert "verification status entered-in-error" in first["detail"]
    assert "status completed" in first["detail"]
    assert not any("cauda" in c["summary"] for c in data["cards"])


@pytest.mark.parametrize(("birth", "used"), [("1980-02-01", "age = 46"), ("1980-02", "age = 46"),
                                              ("1980", "partial date"), ("1980-06", "partial date")])
def test_a_partial_birth_date_gives_an_age_only_when_it_can_mean_one(app, birth, used):
    data = send(app, request(birth=birth)).json()
    assert used in data["cards"][0]["detail"]


def test_a_pain_score_the_library_refuses_is_listed_with_its_message(app):
    data = send(app, request(observations=[pain("o1", 12)])).json()
    assert "expected an integer from 0 to 10, got int 12" in data["cards"][0]["detail"]


@pytest.mark.parametrize(("mutate", "status", "fragment"), [
    (lambda b: b.update(hook="order-select"), 400, "patient-view"),
    (lambda b: b.pop("hookInstance"), 400, "hookInstance"),
    (lambda b: b["prefetch"].pop("medications"), 412, "'medications'"),
    (lambda b: b.pop("prefetch"), 412, "prefetch"),
    (lambda b: b["prefetch"]["conditions"]["entry"][0]["resource"].pop("subject"), 400, "subject"),
    (lambda b: b["prefetch"]["conditions"]["entry"][0]["resource"].update(onsetDateTime="soon"), 400,
     "onsetDateTime"),
    (lambda b: b["prefetch"]["conditions"]["entry"][0]["resource"].update(subject={"reference": "Patient/p2"}),
     400, "not the patient in context"),
    (lambda b: b["prefetch"]["patient"].update(id="p2"), 400, "not the patient in context"),
    (lambda b: b["prefetch"].update(patient={"resourceType": "Bundle", "type": "searchset"}), 400, "Patient"),
])
def test_bad_requests_are_refused_with_a_reason(app, mutate, status, fragment):
    body = request(conditions=[condition("c1", SNOMED, "64859006")])
    mutate(body)
    response = call(app, "POST", URL, json=body)
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"]


def test_not_json_is_400(app):
    response = call(app, "POST", URL, content=b"{nope", headers={"content-type": "application/json"})
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=12,
)


@settings(max_examples=60)
@given(st.fixed_dictionaries({}, optional={
    "hook": st.sampled_from(["patient-view", "x"]), "hookInstance": st.text(max_size=5),
    "context": json_values, "prefetch": st.dictionaries(
        st.sampled_from(["patient", "conditions", "observations", "medications"]), json_values)}))
def test_no_request_body_gets_a_500(app, body):
    response = call(app, "POST", URL, content=json.dumps(body).encode())
    assert response.status_code in (200, 400, 412, 422), response.text


def test_the_code_map_is_checked_against_the_rules():
    fields = backcare.Recommender().fields
    codes = CodeMap.load(fields)
    assert codes.maps and all(m.source in codes.sources for m in codes.maps)
    assert all(s.url.startswith("https://") for s in codes.sources.values())
    broken = """
[pain]
field = "pain_intensity"
system = "http://loinc.org"
code = "72514-3"
display = "x"
source = "s"

[[source]]
id = "s"
label = "s"
url = "https://example.org"

[[map]]
resource = "Condition"
system = "http://snomed.info/sct"
sets = { red_flags = ["urinary_retentoin"] }
source = "s"
codes = [["1", "one"]]
"""
    with pytest.raises(RuleError, match="did you mean 'urinary_retention'"):
        CodeMap.load(fields, broken)
