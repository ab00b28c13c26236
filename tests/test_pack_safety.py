"""Issue 11: safety that no rule pack can bypass, and the red-flag links that were missing.

Part A: a pack cannot weaken safety without ``allow_safety_overrides=True``,
not through what a safety rule depends on (computed from the rule graph),
not through technique attributes, urgency texts or cited sources. Part B:
conditions and ages that are red flags refer. Part C: sciatica and STarT Back.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import backcare
from backcare import ProfileError, Recommender, RuleError
from backcare._cli import main

from . import packgen
from .strategies import CONDITIONS, profiles

ALL = {"kneading", "stretching", "light_stroking", "deep_pressure", "neuromuscular_massage",
       "trigger_point_therapy", "swedish_massage"}
PRESSURES = ["light", "moderate", "firm", "deep"]


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def ids(result: backcare.Recommendation) -> list[str]:
    return [t.id for t in result.techniques]


def excluded(result: backcare.Recommendation) -> set[str]:
    return {e.technique for e in result.excluded}


def urgency(result: backcare.Recommendation) -> str | None:
    return result.referral.urgency if result.referral else None


# --- A1: what a safety rule depends on ------------------------------------------------


@pytest.mark.parametrize("pack_text", [
    'disable = ["duration.acute"]\n',
    """
    [[rule]]
    id = "duration.acute"
    replace = true
    title = "Acute means under a week"
    when = { pain_weeks = { lt = 1 } }
    then = { derive = { duration = "acute" } }
    because = "x"
    source = "qaseem2017"
    evidence = "guideline"
    """,
])
def test_a_pack_cannot_talk_the_new_pain_over_50_referral_away(tmp_path, pack_text):
    # Old code: the safety rule needed duration.acute, so this pack turned the
    # urgent referral into light stroking with no safety override reported.
    rec = Recommender([write(tmp_path / "pack.toml", pack_text)])
    result = rec.recommend({"age": 62, "pain_weeks": 1})
    assert urgency(result) == "urgent" and result.techniques == ()
    assert "red-flag.new_pain_over_50" in result.fired
    assert result.safety_overrides == ()


SAFETY_ON_CHRONIC = """
[[source]]
id = "clinic.protocol"
kind = "convention"
citation = "Our clinic's protocol"

[[rule]]
id = "clinic.chronic-check"
title = "Chronic pain: check before firm work"
when = { duration = "chronic" }
then = { warn = "Chronic pain: the therapist checks before firm work." }
because = "House rule."
source = "clinic.protocol"
evidence = "low"
safety = true

[[rule]]
id = "clinic.long-standing"
title = "Long-standing pain"
when = { persistent = true }
then = { derive = { duration = "chronic" } }
because = "x"
source = "clinic.protocol"
evidence = "low"

[[rule]]
id = "clinic.persistent"
title = "Pain on most days is persistent"
when = { most_days = true }
then = { derive = "persistent" }
because = "x"
source = "clinic.protocol"
evidence = "low"

[[field]]
name = "most_days"
type = "bool"
description = "Pain on most days."
"""


def test_the_rules_a_safety_rule_depends_on_are_protected_transitively(tmp_path):
    base = write(tmp_path / "base.toml", SAFETY_ON_CHRONIC)
    rb = Recommender([base]).rulebase
    assert rb.protected["duration.chronic"].needed_by == ("clinic.chronic-check",)
    assert rb.protected["clinic.long-standing"].needed_by == ("clinic.chronic-check",)
    # persistent -> duration = chronic -> the safety rule: protected through another rule
    assert rb.protected["clinic.persistent"].needed_by == ("clinic.chronic-check",)
    assert "duration.acute" not in rb.protected  # derives a value the safety rule never tests
    for target in ("duration.chronic", "clinic.persistent"):
        attack = write(tmp_path / f"off-{target}.toml", f'disable = ["{target}"]\n')
        with pytest.raises(RuleError) as info:
            Recommender([base, attack])
        [problem] = info.value.problems
        assert problem.key == "disable" and problem.line == 1
        assert f"rule {target!r} is protected" in problem.message
        assert "'clinic.chronic-check'" in problem.message and "allow_safety_overrides=True" in problem.message
    attack = write(tmp_path / "off.toml", 'disable = ["duration.chronic"]\n')
    rec = Recommender([base, attack], allow_safety_overrides=True)
    [override] = rec.recommend({"pain_weeks": 20}).safety_overrides
    assert "rule 'duration.chronic' (needed by safety rule 'clinic.chronic-check') disabled by" in override
    weaker = write(tmp_path / "weaker.toml", """
        [[rule]]
        id = "duration.chronic"
        replace = true
        title = "Chronic from half a year"
        when = { pain_weeks = { gt = 26 } }
        then = { derive = { duration = "chronic" } }
        because = "x"
        source = "qaseem2017"
        evidence = "guideline"
    """)
    with pytest.raises(RuleError, match="rule 'duration.chronic' is protected .*replacing it needs"):
        Recommender([base, weaker])


def test_disabling_an_ordinary_rule_nothing_safe_depends_on_still_works(tmp_path):
    pack = write(tmp_path / "off.toml", 'disable = ["seed.rubbing-feels-good", "duration.acute"]\n')
    result = Recommender([pack]).recommend({"pain_weeks": 2})
    assert "duration.acute" not in result.fired and result.safety_overrides == ()


def test_rules_check_fails_naming_the_safety_rule_and_rules_show_says_protected(tmp_path, capsys):
    base = write(tmp_path / "base.toml", SAFETY_ON_CHRONIC)
    attack = write(tmp_path / "attack.toml", 'disable = ["duration.chronic"]\n')
    assert main(["rules", "check", str(base), str(attack)]) != 0
    err = capsys.readouterr().err
    assert "duration.chronic" in err and "clinic.chronic-check" in err
    assert main(["rules", "show", "duration.chronic", "--rules", str(base)]) == 0
    out = capsys.readouterr().out
    assert "protected" in out and "clinic.chronic-check" in out
    assert main(["rules", "show", "duration.acute", "--rules", str(base)]) == 0
    assert "protected" not in capsys.readouterr().out


# --- A2: technique attributes -------------------------------------------------------------


LIGHT_DEEP = """
[[technique]]
id = "deep_pressure"
replace = true
name = "Deep pressure"
description = "Slow, firm pressure into the deeper layers of muscle and connective tissue."
pressure = "light"
"""


@pytest.mark.parametrize("condition", ["neuropathy", "anticoagulants"])
def test_a_pack_cannot_relabel_a_technique_lighter_to_bring_it_back(tmp_path, condition):
    pack = write(tmp_path / "light.toml", LIGHT_DEEP)
    with pytest.raises(RuleError) as info:
        Recommender([pack])
    [problem] = info.value.problems
    assert problem.key == "pressure" and problem.line == 6
    assert "safety rules read its pressure ('deep')" in problem.message
    rec = Recommender([pack], allow_safety_overrides=True)
    result = rec.recommend({"scar_tissue": True, "conditions": [condition]})
    assert any("pressure changed from 'deep' to 'light'" in o for o in result.safety_overrides)
    assert "WARNING" in result.explain()


def test_low_pressure_tolerance_also_reads_pressure(tmp_path):
    pack = write(tmp_path / "light.toml", LIGHT_DEEP)
    with pytest.raises(RuleError):
        Recommender([pack])  # old code: accepted, and deep pressure came back for low tolerance too


def test_a_techniques_name_and_description_are_protected_too(tmp_path):
    # Swapping names would list deep pressure as "Light stroking" for someone on blood thinners.
    swap = write(tmp_path / "swap.toml", """
        [[technique]]
        id = "deep_pressure"
        replace = true
        name = "Light stroking"
        description = "Gentle gliding strokes over the skin (effleurage): comforting, with little pressure."
        pressure = "deep"

        [[technique]]
        id = "light_stroking"
        replace = true
        name = "Deep pressure"
        description = "Slow, firm pressure into the deeper layers of muscle and connective tissue."
        pressure = "light"
    """)
    with pytest.raises(RuleError) as info:
        Recommender([swap])
    keys = sorted((p.rule_id, p.key) for p in info.value.problems)
    assert keys == [("deep_pressure", "description"), ("deep_pressure", "name"),
                    ("light_stroking", "description"), ("light_stroking", "name")]
    assert all("exclusions and referrals show techniques by their" in p.message for p in info.value.problems)
    same = write(tmp_path / "same.toml", LIGHT_DEEP.replace('"light"', '"deep"'))
    assert Recommender([same]).rulebase.safety_overrides == ()  # restating it changes nothing


@pytest.mark.parametrize("name", ["Deep pressure", "deep  PRESSURE", "Deep pressure.", "\\uff24eep pressure"])
@pytest.mark.parametrize("allow", [False, True])
def test_a_new_technique_may_not_reuse_a_display_name(tmp_path, name, allow):
    pack = write(tmp_path / "twin.toml", f"""
        [[technique]]
        id = "deep_pressure_2"
        name = "{name}"
        description = "The same, under another id."
        pressure = "light"
    """)
    with pytest.raises(RuleError, match="technique name .* looks the same as that of technique 'deep_pressure'"):
        Recommender([pack], allow_safety_overrides=allow)


@pytest.mark.parametrize(("name", "message"), [
    ("D\\u0435ep pressure", "mixes Cyrillic and Latin letters"),  # a Cyrillic e
    ("Deep\\u200bpressure", r"control character U\+200B"),  # a zero-width space
    ("Deep \\u202epressure", r"control character U\+202E"),  # right-to-left override
])
def test_names_that_imitate_others_are_refused(tmp_path, name, message):
    pack = write(tmp_path / "twin.toml", f"""
        [[technique]]
        id = "clinic.twin"
        name = "{name}"
        description = "A lookalike."
        pressure = "light"
    """)
    with pytest.raises(RuleError, match=message):
        Recommender([pack])


def test_a_red_flag_or_contraindication_cannot_be_worded_like_another(tmp_path):
    # Same words, weaker effect: a form would offer the routine one beside the emergency one.
    pack = write(tmp_path / "twins.toml", """
        [[red_flag]]
        id = "bladder_control"
        description = "New loss of bladder control"
        suspected = "a urinary tract infection"
        urgency = "routine"
        source = "nice-ng59"

        [[contraindication]]
        id = "blood_thinners"
        description = "Taking anticoagulant (blood-thinning) medicine."
        effect = "consult_first"
        because = "Ask your doctor."
        source = "walton2011"
    """)
    with pytest.raises(RuleError) as info:
        Recommender([pack])
    found = {(p.rule_id, p.kind) for p in info.value.problems}
    assert found == {("bladder_control", "red_flag"), ("blood_thinners", "contraindication")}
    assert all("looks the same as that of" in p.message for p in info.value.problems)


def test_a_pack_text_is_labelled_with_its_pack_and_kept_apart_from_an_emergency(tmp_path):
    pack = write(tmp_path / "calm.toml", """
        [pack]
        name = "calm-clinic"

        [[rule]]
        id = "clinic.reassure"
        title = "Reassurance"
        when = { red_flags = { contains = "saddle_anaesthesia" } }
        then = { note = "There is no need to see a doctor; a gentle massage is fine." }
        because = "x"
        source = "nice-ng59"
        evidence = "guideline"

        [[rule]]
        id = "clinic.downplay"
        title = "Nothing serious"
        when = { red_flags = { contains = "saddle_anaesthesia" } }
        then = { refer = { urgency = "routine", suspected = "a trapped nerve, nothing serious" } }
        because = "x"
        source = "nice-ng59"
        evidence = "guideline"
        safety = true
    """)
    result = Recommender([pack]).recommend({"red_flags": ["saddle_anaesthesia"]})
    assert result.referral.urgency == "emergency"
    assert result.referral.suspected == ("cauda equina syndrome",)  # the milder referral does not join it
    assert "clinic.downplay" not in [s.rule_id for s in result.referral.rationale]
    [note] = result.notes
    assert note.pack == "calm-clinic"
    text = " ".join(result.explain().split())
    referral_block, rest = text.split("Other rule packs add (they do not change the referral above):")
    assert "no need to see a doctor" not in referral_block
    assert "[clinic.reassure, from the rule pack 'calm-clinic']" in rest


# --- A3: urgency texts and cited sources ------------------------------------------------------


def test_urgency_texts_are_safety_content(tmp_path):
    pack = write(tmp_path / "calm.toml", """
        [urgency.emergency]
        action = "No need to see a doctor; a massage will sort it."
    """)
    with pytest.raises(RuleError) as info:
        Recommender([pack])
    assert "[urgency.emergency] is safety content" in str(info.value)
    rec = Recommender([pack], allow_safety_overrides=True)
    result = rec.recommend({"red_flags": ["saddle_anaesthesia"]})
    assert result.safety_overrides and "[urgency.emergency] changed by" in result.safety_overrides[0]
    same = write(tmp_path / "same.toml", """
        [urgency.urgent]
        action = "See a doctor urgently, within a few days, before having any massage."
    """)
    assert Recommender([same]).rulebase.safety_overrides == ()  # restating it changes nothing


def test_routine_gentleness_is_safety_content_too(tmp_path):
    pack = write(tmp_path / "firm.toml", """
        [urgency.routine]
        action = "Book a routine appointment with your GP or physiotherapist to have this assessed."
        max_pressure = "deep"
    """)
    with pytest.raises(RuleError, match=r"\[urgency.routine\] is safety content"):
        Recommender([pack])


def test_sources_cited_by_safety_rules_cannot_be_rewritten(tmp_path):
    pack = write(tmp_path / "src.toml", """
        [[source]]
        id = "finucane2020"
        replace = true
        kind = "guideline"
        citation = "A blog post"
    """)
    with pytest.raises(RuleError, match="source 'finucane2020' is cited by safety rules"):
        Recommender([pack])
    other = write(tmp_path / "seed.toml", """
        [[source]]
        id = "seed.swedish"
        replace = true
        kind = "seed"
        citation = "The same post, another edition"
    """)
    Recommender([other])  # not cited by any safety rule


# --- Properties: packs without the opt-in never weaken safety ------------------------------------

_DEFAULT = Recommender(cache_size=0)
_ORDINARY = sorted(r.id for r in _DEFAULT.rulebase.rules if not r.safety)
_SAFETY = sorted(r.id for r in _DEFAULT.rulebase.rules if r.safety)
_FACTS = ["duration", "intensity", "trauma", "trigger_points", "poor_elasticity", "healing_impaired"]


@st.composite
def hostile_packs(draw: st.DrawFn) -> str:
    """Packs a hostile author might write: disable, replace, relabel, outweigh, add twins."""
    tables: dict[str, list[dict[str, Any]]] = {"technique": [], "rule": []}
    top: dict[str, Any] = {}
    disable = draw(st.lists(st.sampled_from(_ORDINARY + _SAFETY[:3]), max_size=4, unique=True))
    if disable:
        top["disable"] = disable
    for rid in draw(st.lists(st.sampled_from(_ORDINARY), max_size=3, unique=True)):
        fact = draw(st.sampled_from(_FACTS))
        tables["rule"].append({
            "id": rid, "replace": True, "title": "weakened", "when": {"pain_weeks": {"lt": draw(st.integers(0, 3))}},
            "then": {"derive": {fact: draw(st.sampled_from(["acute", "chronic", True]))}}
            if draw(st.booleans()) else {"score": {"deep_pressure": 50}},
            "because": "x", "source": "furlan2015", "evidence": "low"})
    if draw(st.booleans()):
        tables["technique"].append({"id": draw(st.sampled_from(sorted(ALL))), "replace": True, "name": "Renamed",
                                    "description": "x", "pressure": draw(st.sampled_from(PRESSURES))})
    for n in range(draw(st.integers(0, 2))):
        tid = f"clinic.t{n}"
        tables["technique"].append({"id": tid, "name": f"Clinic technique {n}", "description": "x",
                                    "pressure": draw(st.sampled_from(PRESSURES))})
        tables["rule"].append({"id": f"clinic.push{n}", "title": "push", "when": {"pain_weeks": {"ge": 0}},
                               "then": {"score": {tid: 100, "deep_pressure": 100}}, "because": "x",
                               "source": "furlan2015", "evidence": "guideline"})
    if draw(st.integers(0, 5)) == 0:
        top["urgency"] = {"urgent": {"action": "Relax, no doctor needed."}}
    return packgen.to_toml({k: v for k, v in tables.items() if v}, top)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(pack=hostile_packs(), data=st.data())
def test_no_pack_without_the_opt_in_weakens_any_result(pack, data):
    try:
        rec = Recommender([backcare._loader.PackText("hostile", (("hostile.toml", pack),))], cache_size=0)
    except RuleError:
        assume(False)
        return
    assert rec.rulebase.safety_overrides == ()
    for _ in range(6):
        profile = data.draw(profiles())
        base, got = _DEFAULT.recommend(profile), rec.recommend(profile)
        order = ["emergency", "urgent", "routine", None]
        assert order.index(urgency(got)) <= order.index(urgency(base)), (profile, pack)
        if base.referral and base.referral.withholds_techniques:
            assert got.techniques == (), (profile, pack)
        assert not excluded(base) & set(ids(got)), (profile, pack)
        assert excluded(got) >= excluded(base), (profile, pack)


EMERGENCY_OR_URGENT = sorted(f.id for f in backcare.red_flags() if f.urgency in ("emergency", "urgent"))


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(pack=hostile_packs(), data=st.data())
def test_an_emergency_or_urgent_flag_means_no_technique_whatever_the_pack(pack, data):
    """Flags given directly, implied by a condition, or by age: never a technique."""
    try:
        rec = Recommender([backcare._loader.PackText("hostile", (("hostile.toml", pack),))], cache_size=0)
    except RuleError:
        assume(False)
        return
    profile = data.draw(profiles())
    way = data.draw(st.sampled_from(["flag", "condition", "age"]))
    if way == "flag":
        profile["red_flags"] = [*profile.get("red_flags", []), data.draw(st.sampled_from(EMERGENCY_OR_URGENT))]
    elif way == "condition":
        implied = data.draw(st.sampled_from(["tumour_at_site", "active_cancer_treatment", "systemic_infection",
                                             "recent_surgery", "dvt_suspected"]))
        profile["conditions"] = sorted({*profile.get("conditions", []), implied})
        profile.pop("away_from_back", None)
    else:
        profile["age"] = data.draw(st.integers(60, 100))
        profile["pain_weeks"] = data.draw(st.integers(0, 52 * 9))
    result = rec.recommend(profile)
    assert result.techniques == (), (profile, pack)
    assert urgency(result) in ("emergency", "urgent"), (profile, pack)


@settings(max_examples=120)
@given(pressure=st.sampled_from(PRESSURES), condition=st.sampled_from(CONDITIONS), away=st.booleans())
def test_every_contraindication_holds_for_any_technique_a_pack_adds(tmp_path_factory, pressure, condition, away):
    rb = _DEFAULT.rulebase
    c = rb.contraindications[condition]
    pack = write(tmp_path_factory.mktemp("pack") / "new.toml", f"""
        [[technique]]
        id = "clinic.new"
        name = "A new technique"
        description = "x"
        pressure = "{pressure}"

        [[rule]]
        id = "clinic.push"
        title = "push"
        when = {{ stiffness = true }}
        then = {{ score = {{ "clinic.new" = 100 }} }}
        because = "x"
        source = "furlan2015"
        evidence = "guideline"
    """)
    profile: dict[str, Any] = {"stiffness": True, "conditions": [condition]}
    if away and c.effect == "avoid_area":
        profile["away_from_back"] = [condition]
    result = Recommender([pack]).recommend(profile)
    ex = c.exclude
    should_go = c.effect == "no_massage" or (c.effect == "avoid_area" and not away) or (ex is not None and (
        ex.all or (ex.max_pressure is not None and PRESSURES.index(pressure) > PRESSURES.index(ex.max_pressure))
        or (ex.only is not None and "clinic.new" not in ex.only)))
    if should_go or (result.referral and result.referral.withholds_techniques):
        assert "clinic.new" not in ids(result) and "clinic.new" in excluded(result)
    else:
        assert "clinic.new" in ids(result)


# --- B: conditions and ages that are red flags ---------------------------------------------------------


@pytest.mark.parametrize("condition", ["tumour_at_site", "active_cancer_treatment"])
def test_cancer_now_or_past_is_an_urgent_flag_naming_the_condition(condition):
    result = backcare.recommend({"conditions": [condition], "tight_bands": True})
    assert urgency(result) == "urgent" and result.techniques == ()
    assert result.referral.flags == ("history_of_cancer",)
    assert ("conditions", condition) in [(p.fact, p.value) for p in result.referral.triggers]
    desc = backcare.Recommender().rulebase.contraindications[condition].description
    assert desc in result.explain()


def test_systemic_infection_refers_like_a_fever_and_never_reads_as_nothing_to_do():
    result = backcare.recommend({"conditions": ["systemic_infection"], "stiffness": True})
    fever = backcare.recommend({"red_flags": ["fever"], "stiffness": True})
    assert urgency(result) == urgency(fever) == "urgent"
    text = " ".join(result.explain().split())
    assert "No technique is indicated" not in text
    assert "Every massage technique is withheld until a clinician has assessed you." in text


def test_recent_surgery_counts_as_on_the_spine_unless_placed_elsewhere():
    result = backcare.recommend({"conditions": ["recent_surgery"]})
    assert urgency(result) == "urgent" and result.referral.flags == ("recent_spinal_procedure",)
    elsewhere = backcare.recommend({"conditions": ["recent_surgery"], "away_from_back": ["recent_surgery"],
                                    "stiffness": True})
    assert elsewhere.referral is None and elsewhere.techniques
    assert any("keep massage away from the affected area" in w.conclusion for w in elsewhere.warnings)


@pytest.mark.parametrize("fragile", [{"conditions": ["osteoporosis"]}, {"red_flags": ["long_term_corticosteroids"]}])
@pytest.mark.parametrize("trauma", [{"injury": True}, {"conditions": ["acute_injury_72h"]},
                                    {"conditions": ["recent_fracture"], "away_from_back": ["recent_fracture"]}])
def test_fragile_bones_with_trauma_entered_any_way_is_a_suspected_fracture(fragile, trauma):
    profile = {**fragile, **trauma}
    profile["conditions"] = sorted({*fragile.get("conditions", []), *trauma.get("conditions", [])})
    if not profile["conditions"]:
        del profile["conditions"]
    result = backcare.recommend(profile)
    assert urgency(result) == "urgent" and result.techniques == ()
    assert "spinal fracture" in result.referral.suspected


@pytest.mark.parametrize(("age", "weeks"), [(85, 6), (75, 6), (85, 52), (62, 40), (51, 51)])
def test_new_back_pain_after_50_means_onset_after_50(age, weeks):
    result = backcare.recommend({"age": age, "pain_weeks": weeks, "injury": True})
    assert urgency(result) == "urgent" and result.techniques == ()
    assert "safety.new-pain-over-50" in result.fired


@pytest.mark.parametrize(("age", "weeks"), [(51, 52), (62, 700), (50, 0)])
def test_pain_that_began_by_50_is_not_the_flag(age, weeks):
    assert "safety.new-pain-over-50" not in backcare.recommend({"age": age, "pain_weeks": weeks}).fired


def test_over_50_without_a_duration_does_not_read_as_all_clear():
    result = backcare.recommend({"age": 70, "tight_bands": True, "scar_tissue": True})
    assert "safety.over-50-duration-unknown" in result.fired
    assert {"deep_pressure", "trigger_point_therapy"} <= excluded(result)
    assert any("did not say how many weeks" in w.conclusion for w in result.warnings)
    text = " ".join(result.explain().split())
    assert "Firm and deep techniques are left out until you give the weeks of pain" in text


@pytest.mark.parametrize("age", [0, 9, 15])
def test_children_get_no_techniques_and_a_referral_saying_the_guidance_is_for_adults(age):
    result = backcare.recommend({"age": age, "stiffness": True, "tight_bands": True})
    assert result.techniques == () and urgency(result) == "routine"
    assert excluded(result) == ALL
    assert "16" in result.referral.suspected[0] and "adult" in result.referral.suspected[0]
    assert backcare.recommend({"age": 16, "stiffness": True}).referral is None


@pytest.mark.parametrize("intensity", [7, 9, 10])
def test_severe_pain_excludes_firm_techniques_and_prompts_a_clinician(intensity):
    result = backcare.recommend({"pain_intensity": intensity, "injury": True, "pain_weeks": 1,
                                 "tight_bands": True})
    assert {"deep_pressure", "neuromuscular_massage", "trigger_point_therapy"} <= excluded(result)
    assert all(t.score > 0 for t in result.techniques)
    assert any("new or getting worse" in w.conclusion for w in result.warnings)


def test_a_fresh_injury_gets_the_acute_injury_handling():
    result = backcare.recommend({"injury": True, "pain_weeks": 0})
    assert ids(result) == ["light_stroking"]
    assert {"deep_pressure", "kneading"} <= excluded(result)
    assert "contraindication.acute_injury_72h" in result.fired


LOCAL = sorted(c.id for c in backcare.conditions() if c.effect == "avoid_area")


@pytest.mark.parametrize("condition", LOCAL)
def test_a_result_never_recommends_a_technique_on_an_area_it_says_to_avoid(condition):
    result = backcare.recommend({"conditions": [condition], "scar_tissue": True, "stiffness": True})
    assert result.techniques == ()
    assert excluded(result) == ALL
    away = backcare.recommend({"conditions": [condition], "away_from_back": [condition], "scar_tissue": True})
    if away.referral is None:
        assert away.techniques and any(w.rule_id == f"contraindication.{condition}.elsewhere"
                                       for w in away.warnings)


def test_away_from_back_must_name_a_listed_condition():
    with pytest.raises(ProfileError, match=r"'away_from_back\[0\]': 'open_wound' is not in conditions"):
        backcare.recommend({"away_from_back": ["open_wound"]})
    with pytest.raises(ProfileError, match="did you mean 'open_wound'"):
        backcare.recommend({"conditions": ["osteoporosis"], "away_from_back": ["open_wond"]})
    with pytest.raises(ProfileError, match="away_from_back"):  # not a local condition
        backcare.recommend({"conditions": ["osteoporosis"], "away_from_back": ["osteoporosis"]})


def test_a_routine_referral_means_gentle_techniques_only_and_every_text_agrees():
    result = backcare.recommend({"age": 30, "red_flags": ["inflammatory_back_pain"], "tight_bands": True,
                                 "pain_weeks": 20, "goal": "long_term_relief"})
    assert urgency(result) == "routine"
    assert {"trigger_point_therapy", "neuromuscular_massage", "deep_pressure"} <= excluded(result)
    assert all(backcare.Recommender().rulebase.techniques[t].pressure in ("light", "moderate")
               for t in ids(result))
    texts = [result.referral.action, result.referral.meanwhile, *(s.text for s in result.referral.rationale)]
    assert not any("gentle massage may go on" in t for t in texts)
    assert "only gentle" in result.referral.meanwhile and "only gentle massage" in result.referral.rationale[0].text


# --- C: sciatica and STarT Back ---------------------------------------------------------------------


def test_sciatica_is_a_field_with_notes_and_warning_signs_but_no_invented_exclusion():
    plain = backcare.recommend({"stiffness": True, "pain_weeks": 3})
    result = backcare.recommend({"stiffness": True, "pain_weeks": 3, "sciatica": True})
    assert ids(result) == ids(plain) and excluded(result) == excluded(plain)
    assert "sciatica.same-package" in [n.rule_id for n in result.notes]
    assert any("both legs" in w.conclusion for w in result.warnings)
    with pytest.raises(ProfileError, match="'sciatica': expected true or false"):
        backcare.recommend({"sciatica": "yes"})


@pytest.mark.parametrize(("overall", "psychosocial", "group"), [
    (0, 0, "low"), (3, 3, "low"), (4, 3, "medium"), (9, 3, "medium"), (4, 4, "high"), (9, 5, "high")])
def test_start_back_risk_groups(overall, psychosocial, group):
    result = backcare.recommend({"start_back_score": overall, "start_back_psychosocial": psychosocial})
    assert result.facts["start_back_risk"] == (group,)
    assert f"startback.{group}-care" in [n.rule_id for n in result.notes]


@pytest.mark.parametrize(("profile", "field", "fragment"), [
    ({"start_back_score": 10, "start_back_psychosocial": 1}, "start_back_score", "from 0 to 9"),
    ({"start_back_score": 5, "start_back_psychosocial": 6}, "start_back_psychosocial", "from 0 to 5"),
    ({"start_back_score": 3, "start_back_psychosocial": 4}, "start_back_psychosocial", "at most the overall score 3"),
    ({"start_back_score": 3}, "start_back_psychosocial", "expected it with start_back_score"),
    ({"start_back_psychosocial": 2}, "start_back_score", "expected it with start_back_psychosocial"),
])
def test_start_back_scores_are_validated(profile, field, fragment):
    with pytest.raises(ProfileError, match=fragment) as info:
        backcare.recommend(profile)
    assert info.value.field == field


def test_new_fields_reach_the_schema():
    from backcare._schema import profile_schema

    schema = profile_schema(backcare.Recommender().fields)
    for name in ("sciatica", "start_back_score", "start_back_psychosocial", "away_from_back"):
        assert name in schema["properties"], name
    assert "onset_age" not in schema["properties"]  # computed, never given
    with pytest.raises(ProfileError, match="unknown profile field 'onset_age'"):
        backcare.recommend({"onset_age": 60})


def test_a_pack_cannot_take_a_computed_fact_name(tmp_path):
    pack = write(tmp_path / "f.toml", '[[field]]\nname = "onset_age"\ntype = "int"\ndescription = "x"\n')
    with pytest.raises(RuleError, match="'onset_age' is the name of a fact backcare computes"):
        Recommender([pack])
