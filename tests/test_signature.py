"""Issue 16: the signature cache, and the engine path under it.

The differential check itself lives in ``signature_check.py``: the suite
runs it on a few thousand profiles; its docstring gives the command for the
full 100,000.
"""

from __future__ import annotations

import pytest

import backcare
from backcare import Recommender
from backcare._engine import Engine, condition_fact, pattern_key
from backcare._inputs import input_facts
from backcare._loader import PackText
from backcare._oracle import evaluate as oracle_evaluate
from backcare._signature import Signatures

from . import signature_check
from .engine_faults import break_actions

WARMTH = """\
[[field]]
name = "warmth"
type = "number"
description = "How warm the room is, in degrees."
label = "room warmth"

[[field]]
name = "clinic_ref"
type = "string"
description = "A reference no rule reads."

[[rule]]
id = "clinic.warm-room"
title = "A warm room helps"
when = { warmth = { ge = 18 } }
then = { score = { swedish_massage = 1 } }
because = "A warm room relaxes the muscles (a clinic's house rule)."
source = "seed.techniques"
evidence = "claim"
"""


def warmth(cache_size: int = 1024) -> Recommender:
    return Recommender([PackText("clinic", (("clinic.toml", WARMTH),))], cache_size=cache_size)


def premise_values(result: backcare.Recommendation, rule_id: str) -> list[object]:
    return [p.value for t in result.techniques for s in t.rationale if s.rule_id == rule_id for p in s.premises]


# --- the differential check ------------------------------------------------------------------


def test_signature_cached_results_equal_fresh_evaluations():
    default = signature_check.check_default(1500, seed=1)
    assert not default.mismatches, default.mismatches[:5]
    # Many profiles new to the cache share a signature with an earlier one (238 of these 1,500).
    assert default.signature_hits > 150
    packs = signature_check.check_packs(3 * signature_check.PER_PACK, seed=1)
    assert not packs.mismatches, packs.mismatches[:5]
    assert packs.packs == 3 and packs.signature_hits > 100
    assert default.assembled > 100 and packs.assembled > 50


@pytest.mark.parametrize("name, condition, profiles", [
    ("pain_weeks", "pain_weeks < 1", [{"injury": True, "pain_weeks": w} for w in (1, 0, 2)]),
    ("pain_intensity", "pain_intensity ≥ 7", [{"stiffness": True, **({"pain_intensity": i} if i else {})}
                                              for i in (None, 7, 8, 6)]),
    ("onset_age", "onset_age > 50", [{"age": 51, "pain_weeks": w} for w in (52, 26, 104)]),
    ("age", "age < 16", [{"stiffness": True, "age": a} for a in (30, 15, 14, 16)]),
])
def test_a_signature_missing_one_condition_is_caught(name, condition, profiles):
    """The check is not vacuous: leave out of the signature one condition that tells these profiles
    apart (and nothing else does), and it finds the difference."""
    assert not signature_check.check_default(0, profiles=profiles).mismatches
    position = _position(Signatures(Recommender(cache_size=0).rulebase), name, condition)
    dropped = signature_check.check_default(0, drop=(name, position), profiles=profiles)
    assert dropped.mismatches, f"dropping {condition!r} from the signature went unnoticed"


def _position(signatures: Signatures, name: str, condition: str) -> int:
    """Where the condition reading ``condition`` sits among ``signatures.tests[name]``."""
    rb = signatures.rb
    keys = sorted({pattern_key(c): c for r in rb.rules for c in r.when if condition_fact(c) == name}.items())
    assert len(keys) == len(signatures.tests[name])
    return next(i for i, (_, c) in enumerate(keys) if c.describe() == condition)


# --- what a signature hit gives --------------------------------------------------------------


def test_profiles_the_rules_cannot_tell_apart_share_one_evaluation():
    rec = Recommender()
    first = rec.recommend({"pain_weeks": 20, "tight_bands": True})
    second = rec.recommend({"pain_weeks": 30, "tight_bands": True})
    assert rec.cache_info().misses == 1 and rec.cache_info().signature_hits == 1
    rec.recommend({"pain_weeks": 12, "tight_bands": True})  # across a threshold: evaluated
    assert rec.cache_info().misses == 2 and rec.cache_info().signature_hits == 1
    fresh = Recommender(cache_size=0).recommend({"pain_weeks": 30, "tight_bands": True})
    assert second.to_json() == fresh.to_json() and second.explain() == fresh.explain()
    assert second.profile["pain_weeks"] == 30 and first.profile["pain_weeks"] == 20
    assert 30 in premise_values(second, "duration.chronic") and 20 not in premise_values(second, "duration.chronic")
    assert "weeks of pain: 30" in second.explain()
    # The result answers why_not / what_if through the recommender that gave it.
    assert second._recommender is rec
    assert second.why_not("deep_pressure").status == fresh.why_not("deep_pressure").status
    assert [str(w) for w in second.what_if()] == [str(w) for w in fresh.what_if()]


def test_a_field_no_rule_reads_does_not_split_a_signature():
    rec = warmth()
    one = rec.recommend({"warmth": 20, "clinic_ref": "A-1", "stiffness": True})
    two = rec.recommend({"warmth": 25.5, "clinic_ref": "B-2", "stiffness": True})
    assert rec.cache_info().misses == 1 and rec.cache_info().signature_hits == 1
    assert two.to_json() == warmth(0).recommend(dict(two.profile)).to_json()
    assert premise_values(one, "clinic.warm-room") == [20] and premise_values(two, "clinic.warm-room") == [25.5]
    rec.recommend({"warmth": 17, "clinic_ref": "A-1", "stiffness": True})  # below 18: the rule does not fire
    assert rec.cache_info().misses == 2


@pytest.mark.parametrize("values", [((1.0, "1"), (1, "1")), ((0.0, "0"), (-0.0, "-0"), (0, "0")),
                                    ((18, "18"), (18.0, "18"), (18.5, "18.5"))])
def test_numbers_equal_in_python_keep_their_own_value_and_words(values):
    """Regression: the reasoning's memo of steps and words was keyed by facts, where 1 == 1.0 and
    0.0 == -0.0, so a profile's premises could show the value an earlier profile gave (cache off too)."""
    for cache_size in (0, 1024):
        rec = warmth(cache_size)
        for value, shown in values:
            result = rec.recommend({"warmth": value, "stiffness": True})
            fresh = warmth(0).recommend({"warmth": value, "stiffness": True})
            assert result.to_json() == fresh.to_json()
            for step in (s for t in result.techniques for s in t.rationale if s.rule_id == "clinic.warm-room"):
                (premise,) = step.premises
                assert repr(premise.value) == repr(value) and premise.text == f"room warmth: {shown}"


def test_a_profile_new_as_a_whole_is_assembled_from_parts_seen_before():
    rec = Recommender()
    rec.recommend({"stiffness": True, "pain_weeks": 20})
    rec.recommend({"tight_bands": True, "pain_intensity": 5})
    assert rec.cache_info().assembled == 0
    both = {"stiffness": True, "pain_weeks": 26, "tight_bands": True, "pain_intensity": 6}
    result = rec.recommend(both)
    info = rec.cache_info()
    assert (info.misses, info.assembled, info.signature_hits) == (3, 1, 0)
    assert result.to_json() == Recommender(cache_size=0).recommend(both).to_json()
    # Red flags and the weeks of pain share a part of the rule graph (through the age at onset):
    # a red flag with weeks seen before is new to that part, so the engine runs.
    rec.recommend({"red_flags": ["fever"]})
    rec.recommend({"red_flags": ["fever"], "pain_weeks": 30, "stiffness": True})
    assert rec.cache_info().assembled == 1 and rec.cache_info().misses == 5


def test_cache_off_reuses_no_signature():
    rec = Recommender(cache_size=0)
    rec.recommend_many([{"pain_weeks": 20}, {"pain_weeks": 30}, {"pain_weeks": 20}])
    assert rec.cache_info() == backcare.CacheInfo(hits=0, misses=3, size=0, maxsize=0)


def test_a_batch_evaluates_each_new_signature_once():
    rec = Recommender()
    batch = [{"pain_weeks": w, "stiffness": True} for w in (13, 20, 30, 13, 40)]
    results = rec.recommend_many(batch)
    info = rec.cache_info()
    assert (info.misses, info.signature_hits, info.hits) == (1, 3, 4)
    assert [r.profile["pain_weeks"] for r in results] == [13, 20, 30, 13, 40]
    assert results[0] is results[3]
    fresh = Recommender(cache_size=0)
    assert [r.to_json() for r in results] == [fresh.recommend(p).to_json() for p in batch]


# --- validation is remembered, never skipped for a bad profile -------------------------------


def test_a_plain_dict_validated_once_and_a_bad_one_refused_every_time():
    rec = Recommender()
    assert rec.profile({"age": 40}) is rec.profile({"age": 40})
    for _ in range(2):
        with pytest.raises(backcare.ProfileError, match="field 'age'"):
            rec.recommend({"age": 40.0})  # equal to 40 in Python, but a float: refused each time
    with pytest.raises(backcare.ProfileError, match="expected true or false"):
        rec.recommend({"stiffness": 1})
    assert rec.recommend({"stiffness": True}).techniques
    with pytest.raises(backcare.ProfileError, match="expected true or false"):
        rec.recommend({"stiffness": 1})


# --- the engine under it: one session reused, emptied after each call ------------------------


def test_a_reused_session_keeps_nothing_from_the_call_before():
    """Each rule with two conditions is half-matched by one call and completed by the next: nothing fires."""
    rec = Recommender(cache_size=0)
    rb = rec.rulebase
    halves = [({"injury": True}, {"pain_weeks": 0}),  # safety.fresh-injury: injury and pain_weeks < 1
              ({"goal": "long_term_relief"}, {"pain_weeks": 20}),  # seed.more-than-rubbing
              ({"conditions": ["recent_surgery"]}, {"age": 40}),  # away_from_back lacks ... and conditions ...
              ({"start_back_score": 5, "start_back_psychosocial": 2}, {"start_back_score": 2,
                                                                        "start_back_psychosocial": 2})]
    for first, second in halves:
        for profile in (first, second, first, second):
            facts = input_facts(rb, rec.profile(profile))
            assert rec._engine.evaluate(facts) == oracle_evaluate(rb, facts), profile


def test_the_session_is_renewed_and_closing_deletes_it(monkeypatch):
    monkeypatch.setattr(Engine, "SESSION_CALLS", 3)
    rec = Recommender(cache_size=0)
    expected = Recommender(cache_size=0).recommend({"stiffness": True, "pain_weeks": 3}).to_json()
    sessions = set()
    for _ in range(7):
        assert rec.recommend({"stiffness": True, "pain_weeks": 3}).to_json() == expected
        sessions.add(rec._engine._sid)
        assert rec.engine_sessions == 0
    assert len(sessions) == 3  # calls 1-3, 4-6, 7
    rec.close()
    assert rec._engine._sid is None


def test_an_interrupted_call_leaves_a_working_engine(monkeypatch):
    rec = Recommender(cache_size=0)
    expected = rec.recommend({"stiffness": True}).to_json()
    sid = rec._engine._sid
    break_actions(monkeypatch, RuntimeError("boom"))
    with pytest.raises(backcare.EngineError, match="boom"):
        rec.recommend({"stiffness": True})
    monkeypatch.undo()
    assert rec._engine._sid is None and rec.engine_sessions == 0  # the session was deleted
    assert rec.recommend({"stiffness": True}).to_json() == expected
    assert rec._engine._sid != sid


# --- to_json, written directly -------------------------------------------------------------------

ODD = """\
[[technique]]
id = "odd"
name = "Odd \\"quoted\\" \\\\ name é"
description = "Line one\\nline two\\ttab, 漢字 😀 \\u00a0"
pressure = "light"

[[rule]]
id = "clinic.odd"
title = "Ünïcode and ’quotes’?"
when = { stiffness = true }
then = { score = { odd = 0.1 }, note = "A note with \\"quotes\\" and \\\\backslashes\\\\" }
because = "Because </script> & <b>"
source = "seed.techniques"
evidence = "claim"

[[field]]
name = "remark"
type = "string"
description = "Free text no rule reads."
"""


def test_to_json_is_exactly_the_json_dumps_form_and_kept():
    import json

    rec = Recommender([PackText("odd", (("odd.toml", ODD),))])
    for profile in ({"stiffness": True, "pain_weeks": 3}, {"stiffness": True, "red_flags": ["fever"]}, {},
                    {"remark": 'say "hi" \\ \u2028 😀 </script>', "stiffness": True}):
        result = rec.recommend(profile)
        text = result.to_json()
        assert text == json.dumps(result.to_dict(), sort_keys=True, ensure_ascii=False, indent=2, allow_nan=False)
        assert result.to_json() is text  # kept on the (immutable) result
    copy = rec.recommend({"stiffness": True, "pain_weeks": 5})  # instantiated from the first: its own text
    assert '"pain_weeks": 5' in copy.to_json() and copy.to_json() != text


def test_at_most_a_few_engines_keep_an_idle_session():
    """A session holds about 1.4 MB of C memory: many recommenders must not each keep one."""
    from backcare import _engine

    recs = [Recommender(cache_size=0) for _ in range(_engine.MAX_IDLE_SESSIONS + 3)]
    for rec in recs:
        rec.recommend({"stiffness": True})
    holding = [rec for rec in recs if rec._engine._sid is not None]
    assert holding == recs[-_engine.MAX_IDLE_SESSIONS:]  # the most recently used
    assert recs[0].recommend({"stiffness": True}).techniques  # one that gave its session up starts another
    assert recs[0]._engine._sid is not None and recs[3]._engine._sid is None
    for rec in recs:
        rec.close()
