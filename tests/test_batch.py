"""Batch API: recommend_many, the result cache, worker processes and pickling by rule content."""

from __future__ import annotations

import importlib.util
import pickle
import shutil
from pathlib import Path

import pytest

import backcare
from backcare import ProfileError, Recommender, RuleError
from backcare._loader import PackText, load
from backcare._recommender import _rebuild

ROOT = Path(__file__).resolve().parents[1]


def _load_cohort():
    spec = importlib.util.spec_from_file_location("backcare_bench_cohort", ROOT / "benchmarks" / "cohort.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cohort = _load_cohort()

PACK = """\
[[technique]]
id = "hot_stones"
name = "Hot stone massage"
description = "Warm stones placed along the back."
pressure = "light"

[[rule]]
id = "clinic.stiff-hot-stones"
title = "Stiffness: hot stones"
when = { stiffness = true }
then = { score = { hot_stones = 5 } }
because = "Warmth eases stiffness (a clinic's house rule)."
source = "seed.techniques"
evidence = "claim"
"""


SIGNS = ("injury", "inflammation", "scar_tissue", "tight_bands", "stiffness", "reduced_range_of_motion",
         "slow_healing", "sciatica")


def distinct(n: int) -> list[dict]:
    """``n`` profiles the rules tell apart (each a different set of signs), so each is evaluated."""
    assert n <= 2 ** len(SIGNS)
    return [{"pain_weeks": 20, **{s: True for j, s in enumerate(SIGNS) if i >> j & 1}} for i in range(n)]


# --- cache ---------------------------------------------------------------------------


def test_cache_is_bounded_at_its_size():
    rec = Recommender(cache_size=3)
    for p in distinct(10):
        rec.recommend(p)
    assert rec.cache_info() == backcare.CacheInfo(hits=0, misses=10, size=3, maxsize=3, signatures=3)
    rec.recommend_many(distinct(20))
    assert rec.cache_info().size == 3


def test_cache_evicts_the_least_recently_used():
    rec = Recommender(cache_size=2)
    a, b, c = distinct(3)
    first = rec.recommend(a)
    rec.recommend(b)
    assert rec.recommend(a) is first  # a hit, and now the most recent
    rec.recommend(c)  # evicts b, the least recently used
    info = rec.cache_info()
    assert (info.hits, info.misses, info.size) == (1, 3, 2)
    assert rec.recommend(a) is first
    # b left the profile cache, but its signature (kept in an LRU of its own) did not: no evaluation
    assert rec.recommend(b).to_json() == Recommender(cache_size=0).recommend(b).to_json()
    assert rec.cache_info() == backcare.CacheInfo(hits=3, misses=3, size=2, maxsize=2, signature_hits=1,
                                                  signatures=2)


def test_counters_count_each_input_once():
    rec = Recommender(cache_size=100)
    batch = [*distinct(5), *distinct(5), distinct(1)[0]]
    results = rec.recommend_many(batch)
    assert [dict(r.profile) for r in results] == [rec.profile(b).to_dict() for b in batch]
    info = rec.cache_info()
    assert info.misses == 5 and info.hits == 6 and info.size == 5
    assert info.hits + info.misses == len(batch)
    rec.recommend_many(distinct(5))
    assert rec.cache_info().hits == 11 and rec.cache_info().misses == 5
    rec.cache_clear()
    assert rec.cache_info() == backcare.CacheInfo(0, 0, 0, 100, 0, 0)


def test_equal_profiles_share_one_key_whatever_their_spelling():
    rec = Recommender()
    one = rec.recommend({"red_flags": ["fever", "night_pain"], "stiffness": True})
    two = rec.recommend({"stiffness": True, "red_flags": ["night_pain", "fever", "fever"], "age": None})
    assert one is two
    assert rec.cache_info().hits == 1


def test_cache_size_zero_stores_and_reuses_nothing():
    rec = Recommender(cache_size=0)
    batch = [*distinct(3), *distinct(3)]
    results = rec.recommend_many(batch)
    assert rec.cache_info() == backcare.CacheInfo(hits=0, misses=6, size=0, maxsize=0)
    assert [r.to_json() for r in results[:3]] == [r.to_json() for r in results[3:]]
    rec.recommend(batch[0])
    assert rec.cache_info() == backcare.CacheInfo(hits=0, misses=7, size=0, maxsize=0)


@pytest.mark.parametrize("size", [-1, 1.5, True, "10"])
def test_bad_cache_size_is_refused(size):
    with pytest.raises(ValueError, match="cache_size"):
        Recommender(cache_size=size)


# --- recommend_many ------------------------------------------------------------------------


def test_results_come_back_in_input_order_equal_to_single_calls():
    profiles = cohort.cohort(300, seed=3)
    rec = Recommender(cache_size=50)  # smaller than the batch's distinct profiles: eviction mid-batch
    single = Recommender(cache_size=0)
    got = rec.recommend_many(profiles)
    assert [r.to_json() for r in got] == [single.recommend(p).to_json() for p in profiles]
    info = rec.cache_info()
    assert info.hits + info.misses == len(profiles)
    new = len({cohort.json.dumps(p, sort_keys=True) for p in profiles})  # profiles not seen before
    assert info.misses + info.signature_hits == new  # each evaluated, or its signature's result instantiated
    assert 0 < info.signature_hits < new / 2


def test_a_bad_profile_fails_the_batch_by_index_before_any_work():
    rec = Recommender()
    with pytest.raises(ProfileError, match=r"profile #2: unknown profile field 'stifness'") as info:
        rec.recommend_many([{"stiffness": True}, {"age": 40}, {"stifness": True}, {"age": 41}])
    assert info.value.field == "stifness"
    assert rec.cache_info() == backcare.CacheInfo(0, 0, 0, 1024)
    with pytest.raises(ProfileError, match=r"profile #0: a profile must be"):
        rec.recommend_many([["stiffness"]])


@pytest.mark.parametrize("processes", [0, -2, 1.0, True])
def test_bad_process_count_is_refused(processes):
    with pytest.raises(ValueError, match="processes"):
        Recommender().recommend_many([{}], processes=processes)


def test_recommend_many_accepts_any_iterable_and_empty():
    rec = Recommender()
    assert rec.recommend_many([]) == []
    assert len(rec.recommend_many(p for p in distinct(3))) == 3


@pytest.mark.slow
def test_two_processes_give_the_sequential_results():
    profiles = cohort.cohort(200, seed=11, returning=0.2)
    sequential = [Recommender(cache_size=0).recommend(p).to_json() for p in profiles]
    for size in (0, 1024):
        rec = Recommender(cache_size=size)
        got = rec.recommend_many(profiles, processes=2)
        assert [r.to_json() for r in got] == sequential
        info = rec.cache_info()
        assert info.hits + info.misses == len(profiles)


# --- pickling by rule content ---------------------------------------------------------------


def test_pickle_carries_pack_texts_not_paths(tmp_path):
    pack_dir = tmp_path / "clinic"
    (pack_dir / "sub").mkdir(parents=True)
    (pack_dir / "techniques.toml").write_text(PACK.split("[[rule]]")[0])
    (pack_dir / "sub" / "rules.toml").write_text("[[rule]]" + PACK.split("[[rule]]")[1])
    rec = Recommender(rules=[pack_dir], cache_size=7)
    expected = rec.recommend({"stiffness": True}).to_json()
    assert '"hot_stones"' in expected
    data = pickle.dumps(rec)
    shutil.rmtree(pack_dir)
    assert not pack_dir.exists()

    clone = pickle.loads(data)
    assert clone is not rec
    assert clone.recommend({"stiffness": True}).to_json() == expected
    assert clone.cache_info().maxsize == 7
    assert repr(clone) == repr(rec)
    assert pickle.loads(data) is clone  # rebuilt once per process, however often unpickled
    assert pickle.loads(pickle.dumps(clone)) is clone


def test_a_pack_read_once_at_build_time(tmp_path):
    path = tmp_path / "pack.toml"
    path.write_text(PACK)
    rec = Recommender(rules=[path])
    path.write_text("this is = not [valid")  # later edits do not reach pickles of rec
    clone = pickle.loads(pickle.dumps(rec))
    assert clone.recommend({"stiffness": True}).techniques[0].id == "hot_stones"


def test_rebuild_refuses_a_different_default_pack():
    with pytest.raises(RuleError, match="default rule pack installed in this process"):
        _rebuild((), True, False, 1024, "0" * 64)


def test_in_memory_packs_keep_their_file_names_in_errors():
    broken = PACK.replace('source = "seed.techniques"', 'source = "seed.technique"')
    with pytest.raises(RuleError) as info:
        Recommender(rules=[PackText("clinic", (("clinic/rules.toml", broken),))])
    assert "clinic/rules.toml:" in str(info.value)
    assert "did you mean 'seed.techniques'" in str(info.value)
    with pytest.raises(RuleError, match=r"clinic/bad\.toml:1: not valid TOML"):
        load([PackText("clinic", (("clinic/bad.toml", "x = = 1"),))])
    with pytest.raises(RuleError, match="no rule files"):
        load([PackText("empty", ())])


def test_path_packs_behave_as_before(tmp_path):
    with pytest.raises(RuleError, match="rule pack not found"):
        Recommender(rules=[tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(RuleError, match="no .toml rule files"):
        Recommender(rules=[tmp_path / "empty"])
    path = tmp_path / "pack.toml"
    path.write_text(PACK)
    assert Recommender(rules=str(path)).recommend({"stiffness": True}).techniques[0].id == "hot_stones"


@pytest.mark.slow
def test_processes_rebuild_a_pack_whose_files_are_gone(tmp_path):
    pack_dir = tmp_path / "clinic"
    pack_dir.mkdir()
    (pack_dir / "pack.toml").write_text(PACK)
    rec = Recommender(rules=[pack_dir], cache_size=0)
    profiles = [{"stiffness": True, "pain_weeks": w} for w in range(12)]
    expected = [rec.recommend(p).to_json() for p in profiles]
    shutil.rmtree(pack_dir)
    assert [r.to_json() for r in rec.recommend_many(profiles, processes=2)] == expected


def test_eight_threads_share_one_cache_and_get_the_sequential_results():
    import threading

    profiles = cohort.cohort(240, seed=4)
    expected = [Recommender(cache_size=0).recommend(p).to_json() for p in profiles]
    rec = Recommender(cache_size=64)  # small: threads evict each other's entries
    got: dict[int, list[str]] = {}

    def work(n: int) -> None:
        mine = profiles[n * 30:] + profiles[: n * 30]
        got[n] = [r.to_json() for r in rec.recommend_many(mine)]

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for n in range(8):
        assert got[n] == expected[n * 30:] + expected[: n * 30]
    info = rec.cache_info()
    assert info.hits + info.misses == 8 * len(profiles) and info.size <= 64
