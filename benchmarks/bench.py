"""backcare benchmark: ``make bench`` (or ``python benchmarks/bench.py [--quick] [--no-dask]``).

Prints one Markdown table of the figures issues 7 and 16 ask for, each
target marked met or not, then where the time of one call goes. Everything
runs on a deterministic cohort (``cohort.py``), so two runs differ only by
machine noise. The machine is shared and noisy, so figures compared with
each other are measured side by side: per-call timings interleave the
paths being compared, profile by profile, and batch throughputs alternate
over several rounds (the median ratio is reported).

* per call (medians over the cohort): ``recommend()`` with the cache off
  (a miss: validation, input facts, engine, result), ``recommend()`` on a
  warm cache (a hit), the hand-written baseline (``baseline.py``: the
  default pack's rules and result building in plain Python, checked equal
  to backcare on the whole cohort first) and the reference evaluator
  (``_oracle``: the generic plain-Python interpreter of the rules plus the
  same result building); every ratio against the last two;
* import and default-recommender load time: medians over fresh processes;
* the cohort's repeat rates: profiles equal to an earlier one, and profiles
  whose signature (which conditions of the rules they meet) equals an
  earlier one's, and the bound on a cold pass each implies (1 / (1 - r));
* batches: ``recommend_many`` over the cohort by a new recommender with the
  cache off, and by one with the cache on (a cold pass: only repeats can
  hit), and warm (the cohort scored again); batches are timed with the
  cyclic GC paused, as ``timeit`` does, and the warm one also with it
  running;
* RSS: resident memory before and after 200,000 ``recommend()`` calls, with
  the cache off and on, after a warm-up; and over recommenders built and
  dropped;
* Dask: results per second of ``recommend_frame`` on a ``LocalCluster`` of 1
  and 2 worker processes (one thread each), after a warm-up computation so
  each worker has already built its recommender, beside ``recommend_many``
  and ``recommend_frame`` in this process on the same cohort.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import baseline as baseline_mod  # noqa: E402
import cohort as cohort_mod  # noqa: E402

import backcare  # noqa: E402
from backcare import _oracle  # noqa: E402
from backcare._inputs import input_facts  # noqa: E402
from backcare._reasoning import build  # noqa: E402
from backcare._signature import Signatures, Template  # noqa: E402

MiB = 1024 * 1024


def rss() -> int:
    """Resident set size of this process in bytes, from /proc (Linux) or psutil."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import psutil

        return int(psutil.Process().memory_info().rss)


def rss_cells(what: str, limit_mib: float, count: int, step: Any) -> tuple[str, str, str]:
    """A table row's cells: resident memory before and after ``step(i)`` for i below ``count``, judged."""
    gc.collect()
    before = rss()
    for i in range(count):
        step(i)
    gc.collect()
    after = rss()
    growth = (after - before) / MiB
    return (f"RSS before / after {what}", f"{before / MiB:.1f} MiB / {after / MiB:.1f} MiB",
            f"growth < {limit_mib:g} MiB: {verdict(growth < limit_mib)} ({growth:+.2f} MiB)")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def fresh_process(code: str, runs: int) -> float:
    """Median of a figure (seconds) printed by ``code`` in ``runs`` fresh interpreters."""
    out = []
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        out.append(float(done.stdout.strip().splitlines()[-1]))
    return statistics.median(out)


IMPORT_CODE = "import time; t = time.perf_counter(); import backcare; print(time.perf_counter() - t)"
LOAD_CODE = (
    "import time, backcare; t = time.perf_counter(); backcare.Recommender(); print(time.perf_counter() - t)"
)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(next(line.split()[1] for line in f if line.startswith("MemTotal")))
        mem = f", {kb / MiB:.1f} GiB RAM"
    except (OSError, StopIteration):
        pass
    try:
        load = ", load average %.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        load = ""
    return (f"{os.cpu_count()} CPUs ({cpu}){mem}, Python {platform.python_version()} on "
            f"{platform.system()} {platform.release()}, backcare {backcare.__version__}{load}")


def time_calls(fn: Any, items: list[Any]) -> list[float]:
    out = []
    clock = time.perf_counter_ns
    for item in items:
        t = clock()
        fn(item)
        out.append((clock() - t) / 1000)
    return out


def interleaved(paths: dict[str, tuple[Any, list[Any]]]) -> dict[str, list[float]]:
    """Microseconds per call of each path, the paths taking turns item by item (drift hits all alike)."""
    clock = time.perf_counter_ns
    out: dict[str, list[float]] = {name: [] for name in paths}
    n = len(next(iter(paths.values()))[1])
    for i in range(n):
        for name, (fn, items) in paths.items():
            t = clock()
            fn(items[i])
            out[name].append((clock() - t) / 1000)
    return out


def throughput(fn: Any, n: int, *, pause_gc: bool = True) -> float:
    """Items per second of ``fn()``; like ``timeit``, with the cyclic GC paused by default.

    The benchmark itself keeps tens of thousands of objects alive (traces,
    profiles, cached results), and a full collection that happens to fall in
    a timed batch walks all of them: that measures this script's heap, not
    backcare. The warm batch is also timed with the GC running, to show it.
    """
    gc.collect()
    if pause_gc:
        gc.disable()
    try:
        t = time.perf_counter()
        fn()
        return n / (time.perf_counter() - t)
    finally:
        gc.enable()


def signature_repeat_rate(rec: backcare.Recommender, profiles: list[dict]) -> float:
    """The share of profiles whose signature equals an earlier profile's (what a signature cache can hit)."""
    signatures = rec.rulebase.memo("signatures", Signatures)
    seen: set[Any] = set()
    repeats = 0
    for p in profiles:
        sig = signatures.of(input_facts(rec.rulebase, rec.profile(p)))
        key = sig[0] if sig is not None else p
        repeats += key in seen
        seen.add(key)
    return repeats / len(profiles) if profiles else 0.0


def dask_rate(profiles: list[dict], workers: int, result_json: bool = True) -> float:
    import dask
    import dask.dataframe as dd
    import pandas as pd
    from distributed import Client, LocalCluster

    with dask.config.set({"dataframe.convert-string": False}):
        frame = pd.DataFrame.from_records(profiles)
        ddf = dd.from_pandas(frame, npartitions=max(4, 4 * workers))
        warm = dd.from_pandas(frame.head(50), npartitions=workers)
    with LocalCluster(n_workers=workers, processes=True, threads_per_worker=1, dashboard_address=None,
                      silence_logs=50) as cluster, Client(cluster):
        backcare.recommend_frame(warm, result_json=result_json).compute()  # workers import backcare, build once
        t = time.perf_counter()
        out = backcare.recommend_frame(ddf, result_json=result_json).compute()
        elapsed = time.perf_counter() - t
    assert len(out) == len(profiles)
    return len(profiles) / elapsed


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not a measurement")
    parser.add_argument("--no-dask", action="store_true", help="skip the Dask rows")
    args = parser.parse_args(argv)
    n, calls, runs, rounds = (400, 3_000, 2, 1) if args.quick else (10_000, 200_000, 7, 3)

    profiles = cohort_mod.cohort(n)
    rows: list[tuple[str, str, str]] = []

    def row(what: str, value: str, target: str = "") -> None:
        rows.append((what, value, target))

    rec = backcare.Recommender(cache_size=0)
    rb = rec.rulebase
    valid = [rec.profile(p) for p in profiles]
    plain = [p.to_dict() for p in valid]

    # The baseline must give backcare's answer before its speed means anything.
    base = baseline_mod.Baseline(rec)
    wrong = baseline_mod.check(rec, base, profiles)
    if wrong:
        print(f"the hand-written baseline differs from backcare on {len(wrong)} of {n} profiles, e.g. {wrong[0]}; "
              "update benchmarks/baseline.py to the rules", file=sys.stderr)
        return 1

    # import and load, in fresh processes
    import_s = fresh_process(IMPORT_CODE, runs)
    load_s = fresh_process(LOAD_CODE, runs)

    # one call at a time: miss, hit, baseline and oracle side by side
    warm = backcare.Recommender(cache_size=n)
    warm.recommend_many(profiles)
    for p in profiles[:200]:
        rec.recommend(p)
    oracle_in = [(d, input_facts(rb, p)) for d, p in zip(plain, valid)]
    times = interleaved({
        "miss": (rec.recommend, profiles),
        "hit": (warm.recommend, profiles),
        "baseline": (base.recommend, plain),
        "oracle": (lambda a: _oracle.recommend(rb, a[0], a[1]), oracle_in),
    })
    miss50, miss95 = percentile(times["miss"], 0.5), percentile(times["miss"], 0.95)
    hit50, base50, orc50 = (percentile(times[k], 0.5) for k in ("hit", "baseline", "oracle"))
    row("recommend() miss (cache off) p50 / p95", f"{miss50:.0f} us / {miss95:.0f} us",
        f"p50 <= 150 us: {verdict(miss50 <= 150)}")
    row("recommend() hit (warm cache) p50", f"{hit50:.1f} us",
        f"<= 10x baseline: {verdict(hit50 <= 10 * base50)} ({hit50 / base50:.2f}x)")
    row("hand-written baseline p50 (rules + result building, plain Python; equal on the cohort)", f"{base50:.0f} us")
    row("oracle p50 (the generic reference evaluator + the same result building)", f"{orc50:.0f} us")
    row("miss / baseline, miss / oracle (p50)", f"{miss50 / base50:.2f}x, {miss50 / orc50:.2f}x",
        f"miss / oracle <= 10: {verdict(miss50 / orc50 <= 10)}")
    row("hit / baseline, hit / oracle (p50)", f"{hit50 / base50:.3f}x, {hit50 / orc50:.3f}x")
    row("import backcare (fresh process, median)", f"{import_s * 1000:.0f} ms")
    row("default Recommender() load (fresh process, median)", f"{load_s * 1000:.1f} ms",
        f"< 50 ms: {verdict(load_s < 0.05)}")

    # where one miss's time goes, and what a signature hit costs instead of it (medians)
    signatures = rb.memo("signatures", Signatures)
    validate_us = statistics.median(time_calls(rec.profile, profiles))
    facts = [input_facts(rb, p) for p in valid]
    inputs_us = statistics.median(time_calls(lambda p: input_facts(rb, p), valid))
    sig_us = statistics.median(time_calls(signatures.of, facts))
    engine_us = statistics.median(time_calls(rec._engine.evaluate, facts))
    traces = [rec._engine.evaluate(f) for f in facts]
    build_us = statistics.median(time_calls(lambda a: build(rb, a[0], a[1], rec.provenance),
                                            list(zip(plain, traces))))
    results = [build(rb, d, t, rec.provenance) for d, t in zip(plain, traces)]
    json_us = statistics.median(time_calls(lambda r: r.to_json(), results))
    sigs = [signatures.of(f) for f in facts]
    first: dict[Any, tuple[Template, int]] = {}
    pairs = []
    for i, sig in enumerate(sigs):
        if sig is None:
            continue
        if sig[0] in first:
            pairs.append((first[sig[0]][0], i))
        else:
            first[sig[0]] = (Template(results[i], sig[0], sig[1]), i)
    inst_us = statistics.median(time_calls(
        lambda a: a[0].instantiate(signatures, plain[a[1]], sigs[a[1]][1], None), pairs)) if pairs else 0.0
    oracle_eval_us = statistics.median(time_calls(lambda f: _oracle.evaluate(rb, f), facts))
    base_fire_us = statistics.median(time_calls(base.fire, plain))

    # repeat rates and batches
    exact = cohort_mod.repeat_rate(profiles)
    by_signature = signature_repeat_rate(rec, profiles)
    bound_exact, bound_sig = 1 / (1 - exact), 1 / (1 - by_signature)
    row(f"cohort: {n:,} profiles, repeat rate: equal to an earlier profile / same signature as one",
        f"{exact:.1%} / {by_signature:.1%}", f"bounds on a cold pass: {bound_exact:.1f}x / {bound_sig:.1f}x")
    offs, colds, ratios, infos = [], [], [], []
    for _ in range(rounds):  # each pass with a recommender of its own, as a new process would have
        off_rec = backcare.Recommender(cache_size=0)
        off = throughput(lambda: off_rec.recommend_many(profiles), n)
        off_rec.close()
        cold_rec = backcare.Recommender()
        cold = throughput(lambda: cold_rec.recommend_many(profiles), n)
        offs.append(off)
        colds.append(cold)
        ratios.append(cold / off)
        infos.append(cold_rec.cache_info())
        cold_rec.close()
    off, cold, ratio = statistics.median(offs), statistics.median(colds), statistics.median(ratios)
    info = infos[0]
    share = ratio / bound_sig
    row("batch, cache off (every profile evaluated)", f"{off:,.0f} profiles/s")
    row("batch, cache on, starting empty: one cold pass over the cohort", f"{cold:,.0f} profiles/s",
        f">= 5x off and >= 80% of the signature bound: {verdict(ratio >= 5 and share >= 0.8)} "
        f"({ratio:.2f}x, {share:.0%} of {bound_sig:.1f}x; median of {rounds} alternating rounds)")
    row("  of which: profile-cache hits / signature hits / evaluated (assembled from parts)",
        f"{info.hits - info.signature_hits:,} / {info.signature_hits:,} / {info.misses:,} ({info.assembled:,})")
    warm_rec = backcare.Recommender(cache_size=n)
    warm_rec.recommend_many(profiles)
    warm_rate = throughput(lambda: warm_rec.recommend_many(profiles), n)
    warm_gc = throughput(lambda: warm_rec.recommend_many(profiles), n, pause_gc=False)
    row("batch, cache on, warm: the cohort scored again (100% repeats)", f"{warm_rate:,.0f} profiles/s",
        f">= 20x off: {verdict(warm_rate >= 20 * off)} ({warm_rate / off:.1f}x)")
    row("the same warm batch with the cyclic GC running", f"{warm_gc:,.0f} profiles/s", f"{warm_gc / off:.1f}x off")
    base_rate = throughput(lambda: [base.recommend(d) for d in plain], n)
    row("hand-written baseline, the same cohort (no cache)", f"{base_rate:,.0f} profiles/s",
        f"cold pass / baseline: {cold / base_rate:.2f}x; cache off / baseline: {off / base_rate:.2f}x")

    # memory over many calls, cache off and on
    for size, label in ((0, "cache off"), (1024, "cache on")):
        mem_rec = backcare.Recommender(cache_size=size)
        for p in profiles[: min(n, 10_000)] if size else profiles[:1000]:
            mem_rec.recommend(p)
        row(*rss_cells(f"{calls:,} recommend() calls ({label})", 5, calls,
                       lambda i: mem_rec.recommend(profiles[i % n])))
        mem_rec.close()

    # recommenders built and dropped: each must give its engine memory back
    builds = 300 if args.quick else 3_000
    for _ in range(20):
        backcare.Recommender().recommend(profiles[0])
    row(*rss_cells(f"{builds:,} Recommenders built and dropped", 50, builds,
                   lambda i: backcare.Recommender().recommend(profiles[i % n])))

    if not args.no_dask:
        import pandas as pd

        many = throughput(lambda: backcare.Recommender().recommend_many(profiles), n)
        frame = pd.DataFrame.from_records(profiles)
        local = throughput(lambda: backcare.recommend_frame(frame, backcare.Recommender()), n)
        lean_local = throughput(
            lambda: backcare.recommend_frame(frame, backcare.Recommender(), result_json=False), n)
        row("in this process: recommend_many, a fresh recommender (cold pass)", f"{many:,.0f} profiles/s")
        row("in this process: recommend_frame on a pandas frame (cold pass, with result_json)",
            f"{local:,.0f} results/s", f"{local / many:.0%} of recommend_many")
        row("in this process: the same, result_json=False", f"{lean_local:,.0f} results/s",
            f"{lean_local / many:.0%} of recommend_many")
        for result_json, label in ((True, "with result_json (the default)"), (False, "result_json=False")):
            rates = {workers: dask_rate(profiles, workers, result_json) for workers in (1, 2)}
            row(f"Dask recommend_frame {label}, LocalCluster 1 worker process", f"{rates[1]:,.0f} results/s",
                f">= 80% of recommend_many: {verdict(rates[1] >= 0.8 * many)} ({rates[1] / many:.0%}; "
                f"{rates[1] / (local if result_json else lean_local):.0%} of the same recommend_frame here)")
            row(f"Dask recommend_frame {label}, LocalCluster 2 worker processes", f"{rates[2]:,.0f} results/s",
                f">= 1.7x one worker: {verdict(rates[2] >= 1.7 * rates[1])} ({rates[2] / rates[1]:.2f}x)")

    print(f"backcare benchmark{' (--quick: smoke sizes, not a measurement)' if args.quick else ''}")
    print(f"Machine: {machine()}")
    print()
    print("| measure | value | target |")
    print("|---|---|---|")
    for what, value, target in rows:
        print(f"| {what} | {value} | {target} |")
    print()
    print("Where one miss's time goes, and what replaces it on a hit (medians over the cohort):")
    print()
    print("| part | us |")
    print("|---|---|")
    print(f"| validation (`Recommender.profile`, cache off: nothing remembered) | {validate_us:.1f} |")
    print(f"| input facts (`input_facts`: profile facts, computed facts, input tests) | {inputs_us:.1f} |")
    print(f"| signature (`Signatures.of`) | {sig_us:.1f} |")
    print(f"| durable-rules engine (`Engine.evaluate`, incl. backcare's rule actions) | {engine_us:.1f} |")
    print(f"| building the result (`_reasoning.build`) | {build_us:.1f} |")
    print(f"| instantiating a result of the same signature (`Template.instantiate`) | {inst_us:.1f} |")
    print(f"| `to_json()` of a new result (not part of a miss) | {json_us:.1f} |")
    print(f"| oracle evaluation (`_oracle.evaluate`, for comparison) | {oracle_eval_us:.1f} |")
    print(f"| hand-written baseline's rules alone (`Baseline.fire`, for comparison) | {base_fire_us:.1f} |")
    print(f"| per profile, batch with the cache off (mean, incl. tails) | {1e6 / off:.1f} |")
    print(f"| per profile, cold pass (mean over the cohort) | {1e6 / cold:.1f} |")
    print()
    print(f"A cache can only skip repeats. With a share r of them no cache speeds a pass up by more than "
          f"1 / (1 - r): {bound_exact:.1f}x for exact repeats (r = {exact:.1%}), {bound_sig:.1f}x for "
          f"repeated signatures (r = {by_signature:.1%}). The cold pass reached {ratio:.2f}x, {share:.0%} of the "
          f"signature bound; evaluations assembled from parts of the rule graph seen before cost less than a "
          f"miss, which is how a pass can come near the bound.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
