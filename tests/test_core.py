"""Issue 3: recommend() over declarative rules on durable-rules."""

from __future__ import annotations

import json
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import backcare
from backcare import Profile, ProfileError, Recommender
from backcare._engine import Engine

from .engine_faults import break_actions
from .strategies import profiles


def ids(result: backcare.Recommendation) -> list[str]:
    return [t.id for t in result.techniques]


# --- the behaviours the issue asks to see --------------------------------------


def test_chronic_tight_bands_ranks_trigger_point_therapy_first():
    result = backcare.recommend({"pain_weeks": 20, "tight_bands": True})
    first = result.techniques[0]
    assert first.id == "trigger_point_therapy"
    sources = {s.source for s in first.rationale}
    assert "seed.trigger-points" in sources
    passages = [s.passage for s in first.rationale if s.source == "seed.trigger-points"]
    assert all(p and "bands of muscle" in p for p in passages)


def test_stiffness_puts_swedish_massage_in_top_two_with_long_strokes_rationale():
    result = backcare.recommend({"stiffness": True})
    assert "swedish_massage" in ids(result)[:2]
    swedish = next(t for t in result.techniques if t.id == "swedish_massage")
    text = " ".join(s.text for s in swedish.rationale).lower()
    assert "long strokes" in text and "elongation" in text


def test_injury_chain_shows_inflammation_then_scar_tissue_before_technique():
    result = backcare.recommend({"injury": True, "pain_weeks": 3})
    deep = next(t for t in result.techniques if t.id == "deep_pressure")
    steps = [s.rule_id for s in deep.rationale]
    assert steps == ["seed.injury-inflammation", "seed.inflammation-scar-tissue", "seed.break-up-scar-tissue"]
    assert deep.rationale[0].conclusion == "works out: inflammation"
    assert deep.rationale[1].conclusion == "works out: scar tissue (suspected)"
    assert deep.rationale[1].premises[0].text == "inflammation" and not deep.rationale[1].premises[0].given
    assert result.facts == {"duration": ("acute",), "inflammation": (True,), "scar_tissue_suspected": (True,),
                            "trauma": (True,)}


def test_chronic_long_term_relief_demotes_light_stroking_below_advanced_techniques():
    result = backcare.recommend({"pain_weeks": 30, "goal": "long_term_relief"})
    assert ids(result)[:2] == ["neuromuscular_massage", "trigger_point_therapy"]
    assert "light_stroking" not in ids(result)
    [light] = [n for n in result.not_recommended if n.technique == "light_stroking"]
    assert light.reason == "demoted" and light.demoted_by == ("seed.more-than-rubbing",)


def test_empty_profile_gives_empty_valid_result():
    result = backcare.recommend({})
    assert result.techniques == () and result.excluded == () and result.referral is None
    assert result.fired == ("safety.age-not-given",) and dict(result.facts) == {}
    assert "age was not given" in result.warnings[0].conclusion
    assert "not medical advice" in result.disclaimer
    assert json.loads(json.dumps(result.to_dict()))["disclaimer"] == result.disclaimer
    assert "Nothing in this profile points to a particular massage technique" in " ".join(result.explain().split())


def test_profile_object_and_dict_give_the_same_result():
    assert backcare.recommend(Profile(stiffness=True, pain_weeks=5)) == backcare.recommend(
        {"pain_weeks": 5, "stiffness": True}
    )


def test_duration_cut_offs():
    def duration(weeks: int) -> tuple:
        return backcare.recommend({"pain_weeks": weeks}).facts["duration"]

    assert [duration(w) for w in (0, 3, 4, 12, 13)] == [
        ("acute",), ("acute",), ("subacute",), ("subacute",), ("chronic",)
    ]


def test_intensity_bands():
    bands = [backcare.recommend({"pain_intensity": i}).facts["intensity"][0] for i in range(11)]
    assert bands == ["none"] + ["mild"] * 3 + ["moderate"] * 3 + ["severe"] * 4


def test_ties_break_by_evidence_then_technique_id():
    result = backcare.recommend({"injury": True, "scar_tissue": True, "age": 40, "pain_weeks": 20})
    assert [(t.id, t.score, t.evidence) for t in result.techniques][:2] == [
        ("deep_pressure", 2, "claim"), ("kneading", 2, "claim")]
    result = backcare.recommend({"pain_weeks": 26})
    assert [(t.id, t.score, t.evidence) for t in result.techniques] == [
        ("neuromuscular_massage", 1, "trial"), ("swedish_massage", 1, "trial"), ("light_stroking", 1, "low")]


def test_explain_mentions_every_technique_and_the_disclaimer():
    result = backcare.recommend({"pain_weeks": 20, "tight_bands": True, "stiffness": True})
    text = result.explain()
    for t in result.techniques:
        assert t.name in text
    assert "information, not medical advice" in text
    assert "Sources:" in text


# --- profile validation -----------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "field", "fragment"),
    [
        ({"tight_band": True}, "tight_band", "did you mean 'tight_bands'"),
        ({"pain_weeks": -1}, "pain_weeks", "an integer from 0 to"),
        ({"pain_weeks": 3.0}, "pain_weeks", "got float"),
        ({"pain_weeks": True}, "pain_weeks", "got bool"),
        ({"pain_weeks": "3"}, "pain_weeks", "got str"),
        ({"pain_intensity": 11}, "pain_intensity", "from 0 to 10"),
        ({"age": 200}, "age", "from 0 to 130"),
        ({"stiffness": "yes"}, "stiffness", "true or false"),
        ({"stiffness": 1}, "stiffness", "true or false"),
        ({"goal": "relax"}, "goal", "did you mean 'relaxation'"),
        ({"pressure_tolerance": "hi"}, "pressure_tolerance", "one of 'low', 'medium', 'high'"),
        ({"red_flags": "fever"}, "red_flags", "a list"),
        ({"red_flags": [1]}, "red_flags[0]", "non-empty id string"),
        ({"red_flags": ["saddle_anesthesia"]}, "red_flags[0]", "did you mean 'saddle_anaesthesia'"),
        ({"conditions": ["anticoagulant"]}, "conditions[0]", "did you mean 'anticoagulants'"),
        ({"extra": {}}, "extra", "unknown profile field"),
    ],
)
def test_bad_profiles_are_refused_naming_the_field(profile, field, fragment):
    with pytest.raises(ProfileError) as info:
        backcare.recommend(profile)
    assert info.value.field == field
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


def test_profile_must_be_a_mapping():
    with pytest.raises(ProfileError, match="mapping"):
        backcare.recommend([("stiffness", True)])  # type: ignore[arg-type]


def test_profile_class_validates_on_construction():
    with pytest.raises(ProfileError, match="pain_intensity"):
        Profile(pain_intensity=-1)
    with pytest.raises(ProfileError, match="sorted, without duplicates"):
        Profile(red_flags=("b", "a"))  # a tuple bypasses the list converter: must be canonical
    assert Profile(red_flags=["night_pain", "fever", "fever"]).red_flags == ("fever", "night_pain")


def test_none_means_not_given():
    assert backcare.recommend({"stiffness": None, "pain_weeks": None}) == backcare.recommend({})


# --- properties -------------------------------------------------------------------


@settings(max_examples=150)
@given(profiles())
def test_same_input_same_output_and_json_round_trip(profile):
    a = backcare.recommend(profile).to_dict()
    b = Recommender(cache_size=0).recommend(dict(reversed(list(profile.items())))).to_dict()
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert json.loads(json.dumps(a)) == a


@settings(max_examples=100)
@given(profiles(), st.randoms(use_true_random=False))
def test_field_and_list_order_do_not_matter(profile, rnd):
    items = list(profile.items())
    rnd.shuffle(items)
    shuffled = {k: (rnd.sample(v, len(v)) if isinstance(v, list) else v) for k, v in items}
    assert backcare.recommend(shuffled).to_json() == backcare.recommend(profile).to_json()


@settings(max_examples=150)
@given(profiles())
def test_every_rationale_step_names_an_existing_rule(default_recommender, profile):
    rules = default_recommender.rulebase.by_id
    result = default_recommender.recommend(profile)
    steps = [s for t in result.techniques for s in t.rationale]
    steps += [s for e in result.excluded for s in e.reasons]
    steps += [*result.notes, *result.warnings, *(result.referral.rationale if result.referral else ())]
    for step in steps:
        assert step.rule_id in rules
        assert step.rule_id in result.fired
        assert step.evidence in ("guideline", "trial", "low", "claim", "refuted")
    for t in result.techniques:
        assert t.rationale, t.id
        assert t.score == round(sum(c.weight for c in t.contributions if c.counted), 6)
        assert {c.rule_id for c in t.contributions} == {
            s.rule_id for s in t.rationale if dict(rules[s.rule_id].then.score).get(t.id) is not None}


# --- engine discipline --------------------------------------------------------------


def test_concurrent_callers_get_the_sequential_results():
    rec = Recommender(cache_size=0)
    cohort = [
        {"pain_weeks": w % 40, "tight_bands": w % 2 == 0, "stiffness": w % 3 == 0, "injury": w % 5 == 0,
         "goal": ["relaxation", "long_term_relief"][w % 2], "conditions": [["osteoporosis"], []][w % 2]}
        for w in range(120)
    ]
    expected = [rec.recommend(p).to_json() for p in cohort]
    got: dict[int, list[str]] = {}
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            got[n] = [rec.recommend(p).to_json() for p in cohort]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(got[n] == expected for n in range(8))


def test_ten_thousand_calls_leave_no_session_alive():
    # durable-rules refuses new sessions past about 1024 live ones, so 10k
    # calls only succeed if every session is deleted.
    rec = Recommender(cache_size=0)
    for i in range(10_000):
        rec.recommend({"pain_weeks": i % 50, "stiffness": bool(i % 2), "red_flags": [] if i % 7 else ["fever"]})
        assert rec.engine_sessions == 0
    assert rec.cache_info().size == 0


def test_profile_that_matches_no_rule_is_an_empty_result_not_an_error():
    rec = Recommender(cache_size=0)
    for _ in range(1500):  # past durable's live-session limit
        assert rec.recommend({"age": 40, "pressure_tolerance": "high"}).fired == ()


def test_exceptions_in_rule_actions_reach_the_caller(monkeypatch):
    rec = Recommender(cache_size=0)

    class Boom(Exception):
        pass

    break_actions(monkeypatch, Boom("action failed"))
    with pytest.raises(backcare.EngineError, match="action failed") as info:
        rec.recommend({"stiffness": True})
    assert isinstance(info.value.__cause__, Boom)
    assert rec.engine_sessions == 0
    monkeypatch.undo()
    assert rec.recommend({"stiffness": True}).techniques


def test_engine_has_no_timer_threads():
    before = {t.name for t in threading.enumerate()}
    Engine(Recommender().rulebase)
    after = {t.name for t in threading.enumerate()}
    assert after == before


def test_public_surface_is_small():
    assert set(backcare.__all__) == {
        "DISCLAIMER", "BackcareError", "CacheInfo", "Contraindication", "Contribution", "DerivedFact",
        "EngineError", "Exclusion", "FieldSpec", "Miss", "NotRecommended", "PackInfo", "Premise", "Problem",
        "Profile", "ProfileError", "Provenance", "RankedTechnique", "Recommendation", "Recommender", "RedFlag",
        "Referral", "RuleError", "Step", "UnknownIdError", "WhatIf", "WhyNot", "__version__", "conditions",
        "recommend", "recommend_frame", "red_flags",
    }
    assert set(backcare.__all__) <= set(dir(backcare))
    for name in backcare.__all__:
        obj = getattr(backcare, name)
        if isinstance(obj, type):
            assert obj.__module__.startswith("backcare")
