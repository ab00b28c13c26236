"""Hypothesis strategies shared by the tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

import backcare

RED_FLAGS = sorted(f.id for f in backcare.red_flags())
CONDITIONS = sorted(c.id for c in backcare.conditions())
LOCAL_CONDITIONS = sorted(c.id for c in backcare.conditions() if c.effect == "avoid_area")


@st.composite
def _start_back(draw: st.DrawFn) -> dict[str, int]:
    overall = draw(st.integers(0, 9))
    return {"start_back_score": overall, "start_back_psychosocial": draw(st.integers(0, min(5, overall)))}


def profiles(*, flags: bool = True, conditions: bool = True) -> st.SearchStrategy[dict[str, Any]]:
    """Valid profile dicts over every core field; any subset of fields is set.

    Fields that depend on each other are drawn together: the two STarT Back
    scores (the subscore at most the overall), and ``away_from_back`` as some
    of the local conditions listed in ``conditions``.
    """
    fields = {
        "pain_weeks": st.integers(0, 200),
        "pain_intensity": st.integers(0, 10),
        "age": st.integers(0, 100),
        "injury": st.booleans(),
        "inflammation": st.booleans(),
        "scar_tissue": st.booleans(),
        "tight_bands": st.booleans(),
        "stiffness": st.booleans(),
        "reduced_range_of_motion": st.booleans(),
        "slow_healing": st.booleans(),
        "sciatica": st.booleans(),
        "goal": st.sampled_from(["relaxation", "long_term_relief"]),
        "pressure_tolerance": st.sampled_from(["low", "medium", "high"]),
    }
    if flags:
        fields["red_flags"] = st.lists(st.sampled_from(RED_FLAGS), max_size=3)
    base = st.fixed_dictionaries({}, optional=fields)

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        profile = draw(base)
        if "age" in profile and "pain_weeks" in profile and profile["pain_weeks"] > profile["age"] * 52 + 52:
            profile["pain_weeks"] = draw(st.integers(0, profile["age"] * 52 + 52))  # no pain before birth
        if draw(st.booleans()):
            profile.update(draw(_start_back()))
        if conditions and draw(st.booleans()):
            listed = draw(st.lists(st.sampled_from(CONDITIONS), max_size=3))
            profile["conditions"] = listed
            local = sorted({c for c in listed if c in LOCAL_CONDITIONS})
            if local and draw(st.booleans()):
                profile["away_from_back"] = draw(st.lists(st.sampled_from(local), min_size=1, unique=True))
        return profile

    return build()
