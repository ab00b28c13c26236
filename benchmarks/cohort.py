"""A deterministic cohort of back-pain profiles shaped like real intake-form answers.

Used by the benchmark and by the batch and Dask tests. Nothing here is
random at run time: ``cohort(n, seed)`` gives the same profiles in the same
order on every machine (``random.Random`` is specified to be reproducible
for a given seed and these calls).

What makes it realistic rather than uniform:

* most fields are left blank: a person answers three or four questions;
* numbers are answered the way people answer them: durations in round
  weeks (1, 2, 4, 6, 12, 26, 52, ...), pain mostly 3 to 7;
* a ticked box is almost always "yes": an explicit "no" is rare;
* red flags and contraindications are uncommon, and usually single;
* people come back: a share of the requests are returning users who send
  the profile they sent before (a refreshed page, a second visit, an app
  re-asking after an update).

Repeats therefore arise from both common simple profiles and returning
users; :func:`repeat_rate` measures the result rather than assuming it.
"""

from __future__ import annotations

import json
import random
from typing import Any

RED_FLAGS = (  # the common ones first, weighted by rough clinical frequency
    ("night_pain", 5), ("no_improvement_4_weeks", 5), ("new_pain_over_50", 4), ("history_of_cancer", 2),
    ("unexplained_weight_loss", 2), ("fever", 2), ("long_term_corticosteroids", 1), ("major_trauma", 1),
    ("bilateral_leg_symptoms", 1), ("saddle_anaesthesia", 1), ("urinary_retention", 1),
)
CONDITIONS = (
    ("anticoagulants", 4), ("osteoporosis", 4), ("pregnancy", 2), ("skin_infection", 1),
    ("bleeding_disorder", 1), ("dvt_suspected", 1),
)
WEEKS = ((1, 10), (2, 12), (3, 6), (4, 9), (6, 8), (8, 6), (10, 2), (12, 7), (16, 3), (20, 2), (26, 5),
         (52, 5), (104, 2), (156, 1))
BOOLEANS = ("injury", "inflammation", "scar_tissue", "tight_bands", "stiffness", "reduced_range_of_motion",
            "slow_healing")
BOOLEAN_RATE = {"stiffness": 0.35, "tight_bands": 0.25, "reduced_range_of_motion": 0.2, "injury": 0.15,
                "inflammation": 0.08, "scar_tissue": 0.05, "slow_healing": 0.05}


def _pick(rng: random.Random, weighted: tuple[tuple[Any, int], ...]) -> Any:
    values = [v for v, _ in weighted]
    weights = [w for _, w in weighted]
    return rng.choices(values, weights)[0]


def person(rng: random.Random) -> dict[str, Any]:
    """One new person's answers (ids from the default rule pack)."""
    p: dict[str, Any] = {}
    if rng.random() < 0.75:
        p["pain_weeks"] = _pick(rng, WEEKS)
    if rng.random() < 0.35:
        p["pain_intensity"] = _pick(rng, ((2, 2), (3, 4), (4, 5), (5, 6), (6, 5), (7, 4), (8, 2), (9, 1)))
    if rng.random() < 0.08:
        p["age"] = rng.randint(18, 85)
    for name in BOOLEANS:
        if rng.random() < BOOLEAN_RATE[name]:
            p[name] = rng.random() < 0.95
    if rng.random() < 0.25:
        p["goal"] = "relaxation" if rng.random() < 0.6 else "long_term_relief"
    if rng.random() < 0.08:
        p["pressure_tolerance"] = _pick(rng, (("low", 3), ("medium", 1), ("high", 1)))
    if rng.random() < 0.04:
        flags = {_pick(rng, RED_FLAGS) for _ in range(1 if rng.random() < 0.8 else 2)}
        p["red_flags"] = sorted(flags)
    if rng.random() < 0.05:
        p["conditions"] = [_pick(rng, CONDITIONS)]
    return p


def cohort(n: int, seed: int = 7, *, returning: float = 0.5) -> list[dict]:
    """``n`` profiles; a share ``returning`` of them re-sends an earlier person's profile.

    Returning users are drawn with a preference for recent ones (an app
    session, a refresh), so repeats cluster in time as they do in traffic.
    """
    rng = random.Random(seed)
    out: list[dict] = []
    people: list[dict] = []
    for _ in range(n):
        if people and rng.random() < returning:
            back = min(len(people), int(rng.expovariate(1 / 200)) + 1)
            out.append(dict(people[-back]))
        else:
            p = person(rng)
            people.append(p)
            out.append(dict(p))
    return out


def repeat_rate(profiles: list[dict]) -> float:
    """The share of profiles equal to an earlier one (what a perfect cache would hit)."""
    seen: set[str] = set()
    repeats = 0
    for p in profiles:
        key = json.dumps(p, sort_keys=True)
        if key in seen:
            repeats += 1
        seen.add(key)
    return repeats / len(profiles) if profiles else 0.0
