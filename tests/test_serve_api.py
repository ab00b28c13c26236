"""The JSON API and the intake page's server side, driven in process with httpx."""

from __future__ import annotations

import html
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the serve extra is not installed")

import backcare  # noqa: E402
from backcare._schema import profile_schema, result_schema  # noqa: E402
from backcare._serve import create_app  # noqa: E402

from .servekit import call  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "profile.json"
CLINIC = ROOT / "docs" / "examples" / "clinic-pack"
BACKCARE = Path(sys.executable).with_name("backcare")


@pytest.fixture(scope="module")
def app():
    return create_app(backcare.Recommender())


def cli_json(profile_path: Path, packs: list[Path]) -> bytes:
    argv = [str(BACKCARE), "recommend", "--json", *[f"--rules={p}" for p in packs], str(profile_path)]
    return subprocess.run(argv, check=True, capture_output=True).stdout


SAMPLE_PROFILE = json.loads(SAMPLE.read_text(encoding="utf-8"))
EMERGENCY = {"red_flags": ["saddle_anaesthesia"], "tight_bands": True}
PACK_FIELD = {"goal": "relaxation", "heat_sensitive": False, "conditions": ["pregnancy"], "pain_weeks": 2}


@pytest.mark.parametrize(("profile", "packs"), [
    (SAMPLE_PROFILE, []), (EMERGENCY, []), (SAMPLE_PROFILE, [CLINIC]), (EMERGENCY, [CLINIC]), (PACK_FIELD, [CLINIC]),
], ids=["sample", "emergency", "sample-clinic-pack", "emergency-clinic-pack", "pack-field-clinic-pack"])
def test_post_recommend_is_byte_identical_to_the_cli(tmp_path, packs, profile):
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile), encoding="utf-8")
    app = create_app(backcare.Recommender(packs))
    response = call(app, "POST", "/recommend", content=path.read_bytes())
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == cli_json(path, packs)


@pytest.mark.parametrize("profile", [{"tight_band": True}, {"pain_intensity": 11}, {"red_flags": ["fevr"]}, [1]])
def test_a_bad_profile_gets_422_with_the_librarys_own_message(app, profile):
    with pytest.raises(backcare.ProfileError) as expected:
        backcare.Recommender().recommend(profile)
    response = call(app, "POST", "/recommend", json=profile)
    assert response.status_code == 422
    assert response.json() == {"error": str(expected.value), "field": expected.value.field}


@pytest.mark.parametrize("body", [b"", b"{not json", b"\xff\xfe"])
def test_a_body_that_is_not_json_gets_400(app, body):
    response = call(app, "POST", "/recommend", content=body)
    assert response.status_code == 400 and response.json()["error"]


def test_request_size_is_capped_with_or_without_a_declared_length():
    small = create_app(backcare.Recommender(), max_body=2048)
    big = json.dumps({"goal": "relaxation", "x": "y" * 4000}).encode()
    assert call(small, "POST", "/recommend", content=big).status_code == 413

    async def chunks():
        for _ in range(10):
            yield b" " * 1000
    response = call(small, "POST", "/recommend", content=chunks())
    assert response.status_code == 413
    assert call(small, "POST", "/", content=b"pain_weeks=" + b"1" * 5000,
                headers={"content-type": "application/x-www-form-urlencoded"}).status_code == 413
    with pytest.raises(ValueError, match="max_body"):
        create_app(backcare.Recommender(), max_body=10)


def test_schemas_and_rules_are_the_librarys(app):
    rec = backcare.Recommender()
    assert call(app, "GET", "/schema/profile").json() == profile_schema(rec.fields)
    assert call(app, "GET", "/schema/result").json() == result_schema()
    rules = call(app, "GET", "/rules").json()
    assert [r["id"] for r in rules["rules"]] == [r.id for r in rec.rulebase.rules]
    assert all(r["citation"] for r in rules["rules"])


def test_pack_fields_reach_the_schema_and_the_form():
    app = create_app(backcare.Recommender([CLINIC]))
    assert "heat_sensitive" in call(app, "GET", "/schema/profile").json()["properties"]
    page = call(app, "GET", "/").text
    assert 'name="heat_sensitive"' in page
    assert "The person reacts badly to heat on the skin (or cannot feel heat well)." in html.unescape(page)


def test_the_form_has_every_field_and_every_catalogue_entry_in_words(app):
    rec = backcare.Recommender()
    page = call(app, "GET", "/").text
    for name in rec.fields:
        assert f'name="{name}"' in page, name
    for flag in rec.red_flags():
        assert f'value="{flag.id}"' in page and flag.description in html.unescape(page)
    for cond in rec.conditions():
        assert cond.description in html.unescape(page)
    assert "Information, not a medical device." in page


def test_a_form_with_bad_answers_gets_the_librarys_messages_beside_the_fields(app):
    response = call(app, "POST", "/", data={"pain_intensity": "11", "pain_weeks": "ten", "stiffness": "yes"})
    assert response.status_code == 422
    page = response.text
    for field, value in (("pain_intensity", 11), ("pain_weeks", "ten")):
        with pytest.raises(backcare.ProfileError) as expected:
            backcare.Recommender().recommend({field: value})
        assert str(expected.value) in html.unescape(page)
        assert f'id="error-{field}"' in page
    assert 'id="in-stiffness-yes" value="yes" checked' in page  # answers are kept


def test_a_form_submission_shows_the_same_result_as_the_library(app):
    response = call(app, "POST", "/", data={"pain_weeks": "20", "tight_bands": "yes", "red_flags": ["fever"],
                                            "goal": "long_term_relief"})
    assert response.status_code == 200
    expected = backcare.Recommender().recommend(
        {"pain_weeks": 20, "tight_bands": True, "red_flags": ["fever"], "goal": "long_term_relief"})
    page = response.text
    assert 'id="referral"' in page and page.index('id="referral"') < page.index("<form")
    assert expected.referral.action in html.unescape(page)
    assert expected.explain() in html.unescape(page)


def test_the_page_keeps_a_marked_place_for_why_not_and_what_if():
    template = Path(backcare.__file__).parent / "_serve" / "templates" / "page.html"
    text = template.read_text(encoding="utf-8")
    assert "WHY NOT / WHAT IF" in text and "{% block why_not_what_if scoped %}" in text


def test_nothing_is_stored_and_answers_are_locked_down(app):
    response = call(app, "POST", "/", data={"pain_weeks": "3"})
    assert "set-cookie" not in response.headers
    assert response.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "<script" not in response.text


def test_no_profile_data_reaches_the_logs(app, caplog):
    sentinel = 4321
    with caplog.at_level(logging.DEBUG):
        call(app, "POST", "/recommend", json={"pain_weeks": sentinel})
        call(app, "POST", "/", data={"pain_weeks": str(sentinel)})
        call(app, "POST", "/recommend", json={"pain_weeks": 99999})
    assert str(sentinel) not in caplog.text and "99999" not in caplog.text
