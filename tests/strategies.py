"""Hypothesis strategies shared by the tests."""

from __future__ import annotations

from hypothesis import strategies as st

import backcare

RED_FLAGS = sorted(f.id for f in backcare.red_flags())
CONDITIONS = sorted(c.id for c in backcare.conditions())


def profiles(*, flags: bool = True, conditions: bool = True) -> st.SearchStrategy[dict]:
    """Valid profile dicts over every core field; any subset of fields is set."""
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
        "goal": st.sampled_from(["relaxation", "long_term_relief"]),
        "pressure_tolerance": st.sampled_from(["low", "medium", "high"]),
    }
    if flags:
        fields["red_flags"] = st.lists(st.sampled_from(RED_FLAGS), max_size=3)
    if conditions:
        fields["conditions"] = st.lists(st.sampled_from(CONDITIONS), max_size=3)
    return st.fixed_dictionaries({}, optional=fields)
