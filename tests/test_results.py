"""Issue 12: honest results. Evidence-aware labels and ranking, readable text, why not, what if, provenance."""

from __future__ import annotations

import json
import math
import re
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import backcare
from backcare import Recommender, UnknownIdError, _oracle
from backcare._cli import main
from backcare._inputs import input_facts
from backcare._explore import candidates
from backcare._loader import PackText
from backcare._model import EVIDENCE_LEVELS

from . import packgen
from .strategies import profiles
from .test_packs import HOT_STONES

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "profile.json"
DEFAULT = Recommender(cache_size=0)


def ids(result: backcare.Recommendation) -> list[str]:
    return [t.id for t in result.techniques]


def weakest(levels: Any) -> str:
    return max(levels, key=EVIDENCE_LEVELS.index)


# --- 1. evidence per technique is its weakest link ---------------------------------------------


def _chain_levels(rec: Recommender, profile: dict[str, Any]) -> tuple[backcare.Recommendation, dict[str, str]]:
    """Each fired rule's weakest level along everything behind it, recomputed from the oracle's trace."""
    rb = rec.rulebase
    valid = rec.profile(profile)
    trace = _oracle.evaluate(rb, input_facts(rb, valid))
    given_facts = set(trace.given)
    premises: dict[str, set[Any]] = {}
    for f in trace.firings:
        premises.setdefault(f.rule_id, set()).update(f.premises)
    derivers: dict[Any, set[str]] = {}
    for f in trace.firings:
        rule = rb.by_id[f.rule_id]
        for fact in [*rule.then.derive, *(("red_flags", x) for x in rule.then.flag),
                     *(("conditions", x) for x in rule.then.condition)]:
            derivers.setdefault(fact, set()).add(f.rule_id)

    def behind(rule_id: str, seen: set[str]) -> set[str]:
        if rule_id in seen:
            return seen
        seen.add(rule_id)
        for fact in premises[rule_id]:
            if fact not in given_facts:
                for d in derivers.get(fact, ()):
                    behind(d, seen)
        return seen

    levels = {rid: weakest(rb.by_id[r].evidence for r in behind(rid, set())) for rid in premises}
    return rec.recommend(profile), levels


@settings(max_examples=2000)
@given(profiles())
def test_evidence_is_the_weakest_link_and_score_by_evidence_sums_to_the_score(profile):
    result, levels = _chain_levels(DEFAULT, profile)
    for t in result.techniques:
        for c in t.contributions:
            assert c.evidence == levels[c.rule_id], (profile, t.id, c)
            assert c.counted == (c.evidence != "refuted")
        raising = [c.evidence for c in t.contributions if c.counted and c.weight > 0]
        assert t.evidence == weakest(raising), (profile, t.id)
        assert math.isclose(sum(t.score_by_evidence.values()), t.score, abs_tol=1e-6), (profile, t.id)
        assert t.score == round(sum(c.weight for c in t.contributions if c.counted), 6)
        assert t.score > 0 and all(c.weight > 0 for c in t.contributions if c.counted)
    for n in result.not_recommended:
        assert n.score <= 0 or n.demoted_by, (profile, n)


@settings(max_examples=150)
@given(pack=packgen.packs(), data=st.data())
def test_no_technique_scoring_zero_or_less_is_ever_recommended_with_any_pack(pack, data):
    rec = Recommender([PackText("generated", (("generated.toml", pack.text),))], cache_size=0)
    for _ in range(4):
        result = rec.recommend(data.draw(packgen.pack_profiles(pack)))
        for t in result.techniques:
            assert t.score > 0 and not any(c.weight < 0 for c in t.contributions if c.counted)
        assert not set(ids(result)) & {n.technique for n in result.not_recommended}


def test_the_labels_quoted_in_the_issue_are_honest_now():
    # Swedish massage: 5 points labelled "trial", 1 of them from the trial.
    swedish = next(t for t in backcare.recommend({"pain_weeks": 20, "stiffness": True}).techniques
                   if t.id == "swedish_massage")
    assert swedish.evidence == "claim" and dict(swedish.score_by_evidence) == {"trial": 1, "claim": 3}
    # Neuromuscular massage: "trial" at 4 points, 3 from a seed claim, first despite osteoporosis.
    result = backcare.recommend({"conditions": ["osteoporosis"], "pain_weeks": 20, "goal": "long_term_relief"})
    assert "neuromuscular_massage" not in ids(result)  # firm pressure: ruled out by osteoporosis
    nmm = next(t for t in backcare.recommend({"pain_weeks": 20, "goal": "long_term_relief"}).techniques
               if t.id == "neuromuscular_massage")
    assert nmm.evidence == "claim" and dict(nmm.score_by_evidence) == {"trial": 1, "claim": 3}
    # examples/profile.json: trigger point therapy first under the seed policy, labelled a claim.
    sample = json.loads(SAMPLE.read_text())
    top = backcare.recommend(sample).techniques[0]
    assert (top.id, top.evidence, dict(top.score_by_evidence)) == ("trigger_point_therapy", "claim", {"claim": 6})


def test_scores_of_zero_or_less_are_not_recommended():
    result = backcare.recommend({"pain_intensity": 10, "injury": True, "pain_weeks": 1})
    assert all(t.score > 0 for t in result.techniques)
    assert not {"neuromuscular_massage", "trigger_point_therapy"} & set(ids(result))
    chronic = backcare.recommend({"pain_weeks": 30, "goal": "long_term_relief"})
    reasons = {n.technique: (n.reason, n.demoted_by, n.score) for n in chronic.not_recommended}
    assert reasons == {"light_stroking": ("demoted", ("seed.more-than-rubbing",), 0.0),
                       "kneading": ("no_points", (), 0.0)}  # its one point was a refuted claim


# --- 2. ranking policies ---------------------------------------------------------------------


def test_the_evidence_policy_puts_supported_techniques_first_and_seed_keeps_the_document():
    profile = {"pain_weeks": 20, "tight_bands": True, "stiffness": True}
    by_evidence = Recommender(ranking="evidence").recommend(profile)
    order = ids(by_evidence)
    assert order.index("swedish_massage") < order.index("trigger_point_therapy")
    assert by_evidence.provenance.ranking == "evidence"
    assert ids(backcare.recommend({"pain_weeks": 20, "tight_bands": True}))[0] == "trigger_point_therapy"
    assert ids(backcare.recommend(profile))[1] == "trigger_point_therapy"  # the seed order stays as it was
    supported = [t.supported_score for t in by_evidence.techniques]
    assert supported == sorted(supported, reverse=True)  # claims never lift above better support


def test_the_ranking_can_be_set_by_a_pack_the_argument_or_the_cli(tmp_path, capsys):
    pack = tmp_path / "p.toml"
    pack.write_text('[pack]\nname = "clinic"\nranking = "evidence"\n', encoding="utf-8")
    assert Recommender([pack]).ranking == "evidence"
    assert Recommender([pack], ranking="seed").ranking == "seed"  # the caller's choice wins
    with pytest.raises(ValueError, match="did you mean 'evidence'"):
        Recommender(ranking="evidnce")
    assert main(["recommend", "--json", "--ranking", "evidence", str(SAMPLE)]) == 0
    assert json.loads(capsys.readouterr().out)["provenance"]["ranking"] == "evidence"


# --- 4. refuted claims ----------------------------------------------------------------------------


def test_refuted_claims_add_nothing_and_are_never_stated_as_facts():
    result = backcare.recommend({"pain_weeks": 13})
    assert "kneading" not in ids(result)  # its only point was the refuted circulation claim
    swedish = next(t for t in result.techniques if t.id == "swedish_massage")
    assert [c.rule_id for c in swedish.contributions if not c.counted] == ["seed.blood-flow-techniques"]
    text = " ".join(result.explain().split())
    assert "Derived facts:" not in text and "improve_blood_flow = true" not in text
    claims = text.split("What the article claims about you, without good evidence:")[1].split("Rules used")[0]
    assert "tissue that is not healing properly" in claims and "a need for more blood flow" in claims
    assert "The article claims, but research found otherwise: Swedish massage increases circulation" in text
    rb = DEFAULT.rulebase
    assert rb.by_id["seed.swedish-long-strokes"].evidence == "claim"
    assert rb.by_id["seed.elasticity-stretching-kneading"].evidence == "claim"


# --- 5. self-management advice at every duration --------------------------------------------------


@pytest.mark.parametrize("weeks", [1, 6, 20])
def test_self_management_advice_at_every_duration(weeks):
    notes = backcare.recommend({"pain_weeks": weeks}).notes
    note = next(n for n in notes if n.rule_id == "evidence.self-management")
    assert "keep active" in note.conclusion and note.source == "nice-ng59"


# --- citations are attached only to what their sources report --------------------------------------

#: What each source reports, from clinical-sources.md section 7 (keywords of the findings).
REPORTS = {
    "furlan2015": ("short-term", "long-term benefit", "rare"),
    "cherkin2011": ("10 weeks", "relaxation"),
    "lucas2009": ("agree poorly",),
    "wiltshire2010": ("blood flow", "lactate"),
    "crane2012": ("inflammatory signalling",),
}
#: Every caveat that cites a source: the source and the finding of it the caveat states.
CAVEATS = {
    "evidence.chronic-massage-trial": ("furlan2015", "long-term benefit"),
    "seed.break-up-scar-tissue": ("furlan2015", "short-term"),
    "seed.tight-bands-trigger-points": ("lucas2009", "agree poorly"),
    "seed.swedish-long-strokes": ("cherkin2011", "10 weeks"),
    "seed.elasticity-stretching-kneading": ("furlan2015", "short-term"),
    "seed.chronic-not-healing": ("crane2012", "inflammatory signalling"),
    "seed.blood-flow-nutrients": ("wiltshire2010", "blood flow"),
    "seed.blood-flow-techniques": ("wiltshire2010", "blood flow"),
    "seed.toxin-removal": ("wiltshire2010", "lactate"),
    "seed.rubbing-feels-good": ("furlan2015", "short-term"),
    "seed.relaxation-goal": ("cherkin2011", "relaxation"),
    "seed.more-than-rubbing": ("furlan2015", "long-term benefit"),
}
#: Findings a source must never be cited for (the "does not report" column).
NOT_REPORTED = {
    "furlan2015": ("scar tissue forms",),
    "cherkin2011": ("no trial shows long-term",),
    "lucas2009": ("release", "trial support"),
}


def test_every_caveat_source_reports_the_finding_the_caveat_states():
    cited = {r.id: r for r in DEFAULT.rulebase.rules if r.caveat_source}
    assert set(cited) == set(CAVEATS), "add each new cited caveat to CAVEATS, with the finding its source reports"
    for rule_id, (source, finding) in CAVEATS.items():
        rule = cited[rule_id]
        assert rule.caveat_source == source, rule_id
        assert finding in REPORTS[source], (rule_id, "the source does not report that")
        assert finding.lower() in rule.caveat.lower().replace("short term", "short-term"), rule_id
        for wrong in NOT_REPORTED.get(source, ()):
            assert wrong not in rule.caveat.lower(), (rule_id, wrong)
    for rule in DEFAULT.rulebase.rules:
        if rule.caveat and rule.caveat.startswith("No trial was found") and "." not in rule.caveat[:-1]:
            assert rule.caveat_source is None, rule.id  # nothing tested it: cite nothing


def test_the_three_misattributed_citations_are_corrected():
    rb = DEFAULT.rulebase
    assert rb.by_id["seed.trigger-point-pressure"].caveat_source is None  # was lucas2009
    assert rb.by_id["seed.more-than-rubbing"].caveat_source == "furlan2015"  # was cherkin2011
    assert rb.by_id["seed.inflammation-scar-tissue"].caveat_source is None  # was furlan2015


# --- 6. text a patient and a therapist can read --------------------------------------------------------

_RULE_REF = re.compile(r"\[[^\]]*\]")


def test_the_sample_text_has_no_raw_ids_in_sentences():
    result = backcare.recommend(json.loads(SAMPLE.read_text()))
    text = result.explain()
    assert "+3" not in text and "trigger_point_therapy" not in _RULE_REF.sub("", text)
    rb = DEFAULT.rulebase
    raw = {*rb.techniques, *rb.fields, *(r.id for r in rb.rules), *rb.red_flags, *rb.contraindications}
    raw = {r for r in raw if "_" in r or "." in r}
    body = _RULE_REF.sub("", text.split("\nSources:")[0])
    found = sorted(r for r in raw if re.search(rf"(?<![\w.-]){re.escape(r)}(?![\w-])", body))
    assert not found, found
    assert "A score adds up the points" in " ".join(text.split())


def test_the_disclaimer_names_the_warning_signs_in_words():
    assert "red_flags()" not in backcare.DISCLAIMER
    for words in ("numbness around the genitals", "bladder or bowels", "both legs", "fever",
                  "weight loss", "cancer", "after the age of 50"):
        assert words in backcare.DISCLAIMER


def test_an_emergency_says_every_technique_is_withheld_and_excludes_all_of_them():
    result = backcare.recommend({"tight_bands": True, "red_flags": ["saddle_anaesthesia"]})
    assert len(result.excluded) == len(DEFAULT.rulebase.techniques)
    text = " ".join(result.explain().split())
    assert "Every massage technique is withheld until a clinician has assessed you." in text
    assert "Every technique (" in text and "withheld because of the referral above" in text


def test_a_warning_never_reads_as_nothing_to_do():
    result = backcare.recommend({"sciatica": True})
    text = " ".join(result.explain().split())
    assert "Read the warnings above first." in text


# --- 7. why not ---------------------------------------------------------------------------------------------


def test_why_not_an_excluded_technique_names_the_safety_rule(capsys):
    result = backcare.recommend({"scar_tissue": True, "conditions": ["anticoagulants"]})
    why = result.why_not("deep_pressure")
    assert why.status == "excluded" and [s.rule_id for s in why.rules] == ["contraindication.anticoagulants"]
    assert "excluded" in str(why) and "contraindication.anticoagulants" in str(why)


def test_why_not_a_demoted_technique_names_the_demoting_rule():
    why = backcare.recommend({"pain_weeks": 30, "goal": "long_term_relief"}).why_not("light_stroking")
    assert why.status == "demoted" and [s.rule_id for s in why.rules] == ["seed.more-than-rubbing"]


def test_why_not_an_unsupported_technique_lists_the_nearest_misses_first():
    why = backcare.recommend({"stiffness": True}).why_not("trigger_point_therapy")
    assert why.status == "unsupported"
    first = why.misses[0]
    assert (first.rule_id, first.distance) == ("seed.trigger-point-pressure", 1)
    assert first.missing == ("tight, sensitive bands in the back muscles",)
    distances = [m.distance for m in why.misses]
    assert distances == sorted(distances)
    assert "seed.more-than-rubbing" in [m.rule_id for m in why.misses]  # needs chronic pain and the goal
    more = next(m for m in why.misses if m.rule_id == "seed.more-than-rubbing")
    assert more.distance == 2 and "goal one of long term relief" not in more.missing


def test_why_not_an_unknown_id_gets_a_did_you_mean(capsys):
    result = backcare.recommend({"stiffness": True})
    with pytest.raises(UnknownIdError, match="did you mean 'deep_pressure'"):
        result.why_not("deep_presure")
    assert main(["recommend", str(SAMPLE), "--why-not", "deep_presure"]) == 2
    assert "did you mean 'deep_pressure'" in capsys.readouterr().err
    assert main(["recommend", str(SAMPLE), "--why-not", "deep_pressure"]) == 0
    assert "Why not Deep pressure?" in capsys.readouterr().out


# --- 8. what if ---------------------------------------------------------------------------------------------


def test_what_if_finds_a_referral_and_a_new_top_technique_within_bounded_evaluations(monkeypatch):
    rec = Recommender(cache_size=0)
    result = rec.recommend({"stiffness": True, "age": 45})
    calls = []
    real = rec._engine.evaluate
    monkeypatch.setattr(rec._engine, "evaluate", lambda facts: calls.append(1) or real(facts))
    changes = result.what_if()
    assert any(c.referral is not None and c.was_referral is None for c in changes)
    assert any(c.top not in (None, "swedish_massage") for c in changes)
    bound = len(candidates(rec.rulebase, dict(result.profile)))
    assert 0 < len(calls) <= bound, (len(calls), bound)
    age = next(c for c in changes if c.field == "age")
    assert age.values == (0,) and age.ranges == ((0, 15),)  # one value stands for the span
    assert age.referral == "routine" and "age 0 to 15 instead of 45" in str(age)
    weeks = next(c for c in Recommender().recommend({"stiffness": True, "age": 60}).what_if()
                 if c.field == "pain_weeks")
    assert weeks.ranges == ((0, 519),) and weeks.referral == "urgent"  # pain that began after 50: all of it


def test_what_if_candidates_come_from_the_rules_so_pack_fields_work(tmp_path):
    pack = tmp_path / "p.toml"
    pack.write_text(textwrap.dedent(HOT_STONES), encoding="utf-8")
    rec = Recommender([pack])
    changes = rec.recommend({"stiffness": True}).what_if()
    warm = next(c for c in changes if c.field == "cold_sensitive")
    assert warm.values == (True,) and warm.top == "hot_stones"


def test_why_not_and_what_if_need_the_recommender_that_made_the_result():
    import pickle

    result = pickle.loads(pickle.dumps(backcare.recommend({"stiffness": True})))
    assert result == backcare.recommend({"stiffness": True})
    with pytest.raises(backcare.BackcareError, match="no recommender attached"):
        result.what_if()


# --- 9. provenance -------------------------------------------------------------------------------------------


CLINIC = """
[pack]
name = "clinic"
version = "1.2"

[[rule]]
id = "clinic.stretch"
title = "Stretch the stiff"
when = { stiffness = true }
then = { score = { stretching = 0.5 } }
because = "Our protocol."
source = "furlan2015"
evidence = "low"
"""


def test_provenance_follows_the_content_of_the_packs_not_where_they_live(tmp_path):
    one, two, other = (tmp_path / d for d in ("one", "two", "other"))
    for d in (one, two, other):
        d.mkdir()
    (one / "clinic.toml").write_text(CLINIC, encoding="utf-8")
    shutil.copy(one / "clinic.toml", two / "clinic.toml")
    (other / "clinic.toml").write_text(CLINIC.replace("Our protocol.", "Our protocol!"), encoding="utf-8")
    profile = {"stiffness": True}
    a, b, c = (Recommender([d]).recommend(profile).provenance for d in (one, two, other))
    assert a == b
    assert a != c and a.packs[1].digest != c.packs[1].digest
    assert [(p.name, p.version, p.default) for p in a.packs] == [("backcare-default", backcare.__version__, True),
                                                                 ("clinic", "1.2", False)]
    text = " ".join(Recommender([one]).recommend(profile).explain().split())
    assert f"clinic 1.2 (sha256 {a.packs[1].digest[:12]})" in text
    data = Recommender([one]).recommend(profile).to_dict()["provenance"]
    assert data["packs"][1]["digest"] == a.packs[1].digest and data["ranking"] == "seed"


def test_the_default_pack_is_versioned_with_backcare():
    [default] = DEFAULT.rulebase.packs
    assert default.default and default.name == "backcare-default" and default.version == backcare.__version__


def test_the_result_schema_describes_the_new_parts():
    from backcare._schema import result_schema

    schema = result_schema()
    for key in ("not_recommended", "derived", "provenance"):
        assert key in schema["properties"]
    assert "score_by_evidence" in schema["$defs"]["RankedTechnique"]["properties"]
    assert "_recommender" not in schema["properties"] and "recommender" not in schema["properties"]
