"""Signature-cached results equal fresh evaluations, byte for byte (issue 16, item 2).

For each profile, three results are compared: from a recommender with the
cache on, called one profile at a time (a profile new to it whose signature
is not is instantiated from an earlier result); from another, given the
profiles in batches of 64 (``recommend_many`` groups a batch by signature);
and from a recommender with the cache off, which evaluates every profile.
``to_json()`` and ``explain()`` must be equal byte for byte, and each result
must carry the recommender that made it (for ``why_not()`` / ``what_if()``).
The fresh result's ``to_json()`` (written by ``backcare._json``) must also be
exactly ``json.dumps`` of its ``to_dict()``, the form it stands for.

Half the profiles are for the default pack, half for packs written by
``tests/packgen.py`` (fields of every type, ``in`` lists, thresholds,
``given`` / ``lacks`` tests, layered derived facts), with and without the
default pack under them. Numbers are drawn on and either side of the
values the rules compare them with, so profiles that share a signature
differ in their numbers, and profiles that differ by one step across a
boundary do not share one.

The suite runs a small count (``tests/test_signature.py``). The full count,
from the repository root (about ten minutes on two cores)::

    .venv/bin/python -m tests.signature_check --profiles 100000
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Iterator
from typing import Any

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import backcare
from backcare._loader import PackText
from backcare._signature import Signatures

from . import packgen

RED_FLAGS = sorted(f.id for f in backcare.red_flags())
CONDITIONS = sorted(c.id for c in backcare.conditions())
LOCAL = sorted(c.id for c in backcare.conditions() if c.effect == "avoid_area")
BOOLEANS = ("injury", "inflammation", "scar_tissue", "tight_bands", "stiffness", "reduced_range_of_motion",
            "slow_healing", "sciatica")
#: Profiles per generated pack.
PER_PACK = 250
BATCH = 64


@attrs.define
class Report:
    profiles: int = 0
    packs: int = 0
    signature_hits: int = 0  # results instantiated from another profile's, one at a time and in batches
    evaluations: int = 0  # results the cached recommenders evaluated
    assembled: int = 0  # of those, evaluated from parts of the rule graph seen before, without the engine
    mismatches: list[str] = attrs.Factory(list)

    def __str__(self) -> str:
        return (f"{self.profiles:,} profiles ({self.packs} generated packs), each through two cached "
                f"recommenders: {self.signature_hits:,} results instantiated from another profile's signature, "
                f"{self.evaluations:,} evaluated ({self.assembled:,} of them assembled from parts evaluated "
                f"before); {len(self.mismatches)} differ from a fresh evaluation")


def default_profile(rng: random.Random) -> dict[str, Any]:
    """A profile for the default pack, its numbers on and around the rules' thresholds, or anywhere."""
    p: dict[str, Any] = {}
    if rng.random() < 0.7:
        p["pain_weeks"] = rng.choice((0, 0, 1, 2, 3, 4, 5, 8, 11, 12, 13, 20, 26, 52, 104, 520, 6760,
                                      rng.randint(0, 6760)))
    if rng.random() < 0.5:
        p["pain_intensity"] = rng.randint(0, 10)
    if rng.random() < 0.4:
        p["age"] = rng.choice((0, 10, 15, 16, 17, 30, 49, 50, 51, 52, 53, 60, 85, 130, rng.randint(0, 130)))
        if p.get("pain_weeks", 0) > p["age"] * 52 + 52:  # no pain before birth: at the limit, or below it
            p["pain_weeks"] = rng.choice((p["age"] * 52 + 52, rng.randint(0, p["age"] * 52 + 52)))
    for name in BOOLEANS:
        if rng.random() < 0.25:
            p[name] = rng.random() < 0.8
    if rng.random() < 0.3:
        p["goal"] = rng.choice(("relaxation", "long_term_relief"))
    if rng.random() < 0.2:
        p["pressure_tolerance"] = rng.choice(("low", "medium", "high"))
    if rng.random() < 0.25:
        score = rng.randint(0, 9)
        p["start_back_score"] = score
        p["start_back_psychosocial"] = rng.randint(0, min(5, score))
    if rng.random() < 0.15:
        p["red_flags"] = rng.sample(RED_FLAGS, rng.choice((1, 1, 2)))
    if rng.random() < 0.15:
        listed = rng.sample(CONDITIONS, rng.choice((1, 1, 2)))
        p["conditions"] = listed
        local = [c for c in listed if c in LOCAL]
        if local and rng.random() < 0.5:
            p["away_from_back"] = local
    return p


def _check(recs: tuple[backcare.Recommender, backcare.Recommender, backcare.Recommender],
           profiles: list[dict[str, Any]], where: str, report: Report) -> None:
    single, batched, fresh = recs
    in_batches = [r for i in range(0, len(profiles), BATCH) for r in batched.recommend_many(profiles[i:i + BATCH])]
    for profile, one, many in zip(profiles, (single.recommend(p) for p in profiles), in_batches):
        want = fresh.recommend(profile)
        text, words = want.to_json(), want.explain()
        if text != json.dumps(want.to_dict(), sort_keys=True, ensure_ascii=False, indent=2, allow_nan=False):
            report.mismatches.append(f"{where}: to_json() is not the json.dumps form of to_dict() for {profile!r}")
        for got, rec, how in ((one, single, "one at a time"), (many, batched, "in a batch")):
            if got.to_json() != text or got.explain() != words:
                report.mismatches.append(f"{where}, {how}: {profile!r}")
            elif got._recommender is not rec:
                report.mismatches.append(f"{where}, {how}: wrong recommender attached for {profile!r}")
    report.profiles += len(profiles)


def _done(recs: tuple[backcare.Recommender, ...], report: Report) -> None:
    for rec in recs[:2]:
        info = rec.cache_info()
        report.signature_hits += info.signature_hits
        report.evaluations += info.misses
        report.assembled += info.assembled
    for rec in recs:
        rec.close()


def _recommenders(packs: list[PackText], include_default: bool = True,
                  drop: tuple[str, int] | None = None
                  ) -> tuple[backcare.Recommender, backcare.Recommender, backcare.Recommender]:
    """Two cached recommenders (one at a time, in batches) and one with the cache off.

    ``drop`` = (fact name, i) leaves condition i on that fact out of the
    cached recommenders' signatures: the check must then find a difference.
    """
    recs = tuple(backcare.Recommender(packs, include_default=include_default, cache_size=size)
                 for size in (4096, 4096, 0))
    if drop is not None:
        name, index = drop
        for rec in recs[:2]:
            signatures = rec.rulebase.memo("signatures", Signatures)
            signatures.tests[name] = tuple(t for i, t in enumerate(signatures.tests[name]) if i != index)
    return recs  # type: ignore[return-value]


def check_default(n: int, seed: int = 0, drop: tuple[str, int] | None = None,
                  profiles: list[dict[str, Any]] | None = None) -> Report:
    """``n`` profiles for the default pack (or the ``profiles`` given)."""
    report = Report()
    rng = random.Random(seed)
    recs = _recommenders([], drop=drop)
    if profiles is None:
        profiles = [default_profile(rng) for _ in range(n)]
    # Checked in slices, so the cached recommenders see many profiles whose signature they know.
    for i in range(0, len(profiles), 2000):
        _check(recs, profiles[i:i + 2000], "default pack", report)
    _done(recs, report)
    return report


def generated_packs(count: int) -> Iterator[tuple[packgen.Pack, bool]]:
    """``count`` packs from the Hypothesis strategy (derandomised: the same on every run), each with or without
    the default pack under it."""
    found: list[tuple[packgen.Pack, bool]] = []

    @settings(max_examples=count, database=None, derandomize=True, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(packgen.packs(), st.booleans())
    def collect(pack: packgen.Pack, with_default: bool) -> None:
        found.append((pack, with_default))

    collect()
    return iter(found)


def check_packs(n: int, seed: int = 0) -> Report:
    """``n`` profiles over generated packs, :data:`PER_PACK` per pack."""
    report = Report()
    rng = random.Random(seed)
    for index, (pack, with_default) in enumerate(generated_packs(max(1, n // PER_PACK))):
        text = PackText("generated", (("generated.toml", pack.text),))
        recs = _recommenders([text], include_default=with_default)
        _check(recs, packgen.random_profiles(pack, rng, PER_PACK), f"generated pack #{index}", report)
        report.packs += 1
        _done(recs, report)
    return report


def run(profiles: int, seed: int = 0) -> Report:
    """Half the profiles on the default pack, half on generated packs."""
    default = check_default(profiles // 2, seed)
    packs = check_packs(profiles - profiles // 2, seed)
    return Report(default.profiles + packs.profiles, packs.packs, default.signature_hits + packs.signature_hits,
                  default.evaluations + packs.evaluations, default.assembled + packs.assembled,
                  default.mismatches + packs.mismatches)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    report = run(args.profiles, args.seed)
    print(f"{report} ({time.perf_counter() - started:.0f} s)")
    for line in report.mismatches[:20]:
        print("  differs:", line)
    return 1 if report.mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
