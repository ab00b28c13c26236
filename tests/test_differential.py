"""Differential tests: durable-rules and the plain-Python reference evaluator agree.

The oracle (``backcare._oracle``) interprets the same loaded rule objects the
engine compiles. On every generated profile, for the default pack and for
generated packs, both must produce the same trace (rules fired, on which
facts, what was derived) and so the same fired rules, scores, ranking,
exclusions and referral, byte for byte. Hypothesis runs derandomised (see
conftest.py), so the examples are the same on every run.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import backcare
from backcare import _oracle
from backcare._inputs import input_facts
from backcare._loader import PackText

from . import packgen
from .strategies import LOCAL_CONDITIONS, RED_FLAGS, profiles


def _agree(rec: backcare.Recommender, profile: Any) -> backcare.Recommendation:
    valid = rec.profile(profile)
    facts = input_facts(rec.rulebase, valid)
    engine = rec._engine.evaluate(facts)
    oracle = _oracle.evaluate(rec.rulebase, facts)
    assert engine == oracle, f"traces differ for {profile!r}"
    result = rec.recommend(valid)
    expected = _oracle.recommend(rec.rulebase, valid.to_dict(), facts, rec.ranking)
    assert result.to_json() == expected.to_json()
    return result


def test_engine_and_oracle_agree_on_the_default_pack_and_cover_every_rule() -> None:
    rec = backcare.Recommender(cache_size=0)
    fired: set[str] = set()

    @given(profiles())
    @settings(max_examples=600)
    def check(profile: dict[str, Any]) -> None:
        fired.update(_agree(rec, profile).fired)

    check()
    for local in LOCAL_CONDITIONS:  # each local condition placed away from the back, once
        fired.update(_agree(rec, {"stiffness": True, "conditions": [local], "away_from_back": [local]}).fired)
    for flag in RED_FLAGS:  # and each red flag once, whatever the draws above reached
        fired.update(_agree(rec, {"red_flags": [flag], "age": 40}).fired)
    unfired = sorted(r.id for r in rec.rulebase.rules if r.id not in fired)
    assert not unfired, f"the differential examples never fired {unfired}: add examples or widen the strategy"


@given(pack=packgen.packs(), with_default=st.booleans(), data=st.data())
@settings(max_examples=120)
def test_engine_and_oracle_agree_on_generated_packs(
    pack: packgen.Pack, with_default: bool, data: st.DataObject
) -> None:
    rec = backcare.Recommender([PackText("generated", (("generated.toml", pack.text),))],
                               include_default=with_default, cache_size=0)
    fired: set[str] = set()
    for _ in range(4):
        fired.update(_agree(rec, data.draw(packgen.pack_profiles(pack))).fired)
    assert fired <= set(rec.rulebase.by_id)


def test_a_disagreement_would_be_caught(monkeypatch: Any) -> None:
    """The comparison is not vacuous: an oracle that misreads one operator is caught."""
    rec = backcare.Recommender(cache_size=0)
    real = _oracle.compare
    monkeypatch.setattr(_oracle, "compare", lambda op, a, b: real("gt" if op == "ge" else op, a, b))
    try:
        _agree(rec, {"pain_weeks": 4})  # duration.subacute tests pain_weeks ge 4
    except AssertionError:
        return
    raise AssertionError("a wrong oracle agreed with the engine")
