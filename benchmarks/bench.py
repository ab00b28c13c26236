"""backcare benchmark: ``make bench`` (or ``python benchmarks/bench.py [--quick]``).

Prints one Markdown table of the figures issue 7 asks for, each target marked
met or not, then where the time of one call goes. Everything runs on a
deterministic cohort (``cohort.py``), so two runs differ only by machine noise.

* recommend() p50/p95: the public call, cache off, one profile at a time;
* oracle p50: the plain-Python evaluator plus the same result building, on
  the same (already validated) profiles; the ratio is recommend/oracle;
* import and default-recommender load time: medians over fresh processes;
* batch throughput: ``recommend_many`` over the cohort with the cache off
  (every profile evaluated) and on (a fresh recommender, so only repeats
  hit), and with a warm cache (the cohort scored again, as a nightly re-run
  would); batches are timed with the cyclic GC paused, as ``timeit`` does,
  and the warm one also with it running;
* RSS: resident memory before and after 200,000 ``recommend()`` calls with
  the cache off, after a warm-up of 1,000 calls;
* Dask: results per second of ``recommend_frame`` on a ``LocalCluster`` of 1
  and 2 worker processes (one thread each), after a warm-up computation
  so each worker has already built its recommender.
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

import cohort as cohort_mod  # noqa: E402

import backcare  # noqa: E402
from backcare import _oracle  # noqa: E402
from backcare._inputs import input_facts  # noqa: E402
from backcare._reasoning import build  # noqa: E402

MiB = 1024 * 1024


def rss() -> int:
    """Resident set size of this process in bytes, from /proc (Linux) or psutil."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import psutil

        return int(psutil.Process().memory_info().rss)


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
    return (f"{os.cpu_count()} CPUs ({cpu}){mem}, Python {platform.python_version()} on "
            f"{platform.system()} {platform.release()}, backcare {backcare.__version__}")


def time_calls(fn: Any, items: list[Any]) -> list[float]:
    out = []
    clock = time.perf_counter_ns
    for item in items:
        t = clock()
        fn(item)
        out.append((clock() - t) / 1000)
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


def dask_rate(profiles: list[dict], workers: int) -> float:
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
        backcare.recommend_frame(warm).compute()  # workers import backcare and build once
        t = time.perf_counter()
        out = backcare.recommend_frame(ddf).compute()
        elapsed = time.perf_counter() - t
    assert len(out) == len(profiles)
    return len(profiles) / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not a measurement")
    parser.add_argument("--no-dask", action="store_true", help="skip the Dask rows")
    args = parser.parse_args(argv)
    n, calls, runs = (400, 3_000, 2) if args.quick else (10_000, 200_000, 7)

    profiles = cohort_mod.cohort(n)
    repeat = cohort_mod.repeat_rate(profiles)
    rows: list[tuple[str, str, str]] = []

    def row(what: str, value: str, target: str = "") -> None:
        rows.append((what, value, target))

    # import and load, in fresh processes
    import_s = fresh_process(IMPORT_CODE, runs)
    load_s = fresh_process(LOAD_CODE, runs)

    # one call at a time, cache off
    rec = backcare.Recommender(cache_size=0)
    for p in profiles[:200]:
        rec.recommend(p)
    rec_us = time_calls(rec.recommend, profiles)
    valid = [rec.profile(p) for p in profiles]
    rb = rec.rulebase
    oracle_in = [(p.to_dict(), input_facts(rb, p)) for p in valid]
    oracle_us = time_calls(lambda a: _oracle.recommend(rb, a[0], a[1]), oracle_in)
    # where one call's time goes (medians)
    validate_us = statistics.median(time_calls(rec.profile, profiles))
    facts = [input_facts(rb, p) for p in valid]
    engine_us = statistics.median(time_calls(rec._engine.evaluate, facts))
    traces = [rec._engine.evaluate(f) for f in facts]
    build_us = statistics.median(time_calls(lambda a: build(rb, a[0], a[1], rec.provenance),
                                            [(o[0], t) for o, t in zip(oracle_in, traces)]))
    oracle_eval_us = statistics.median(time_calls(lambda f: _oracle.evaluate(rb, f), facts))

    p50, p95, o50 = percentile(rec_us, 0.5), percentile(rec_us, 0.95), percentile(oracle_us, 0.5)
    ratio = p50 / o50
    row("recommend() p50 / p95, cache off", f"{p50:.0f} us / {p95:.0f} us")
    row("oracle p50 (plain-Python rules + same result building)", f"{o50:.0f} us")
    row("ratio recommend / oracle (p50)", f"{ratio:.2f}", f"<= 10: {'met' if ratio <= 10 else 'NOT met'}")
    row("import backcare (fresh process, median)", f"{import_s * 1000:.0f} ms")
    row("default Recommender() load (fresh process, median)", f"{load_s * 1000:.1f} ms",
        f"< 50 ms: {'met' if load_s < 0.05 else 'NOT met'}")

    # batches
    off = throughput(lambda: backcare.Recommender(cache_size=0).recommend_many(profiles), n)
    cold_rec = backcare.Recommender()
    cold = throughput(lambda: cold_rec.recommend_many(profiles), n)
    warm_rec = backcare.Recommender(cache_size=n)
    warm_rec.recommend_many(profiles)
    warm = throughput(lambda: warm_rec.recommend_many(profiles), n)
    warm_gc = throughput(lambda: warm_rec.recommend_many(profiles), n, pause_gc=False)
    hit_us = 1e6 / warm
    row(f"cohort: {n:,} profiles, repeat rate (share equal to an earlier one)", f"{repeat:.1%}")
    row("batch, cache off (every profile evaluated)", f"{off:,.0f} profiles/s")
    row(f"batch, cache on, starting empty ({repeat:.1%} repeats)", f"{cold:,.0f} profiles/s",
        f">= 20x off: {'met' if cold >= 20 * off else 'NOT met'} ({cold / off:.1f}x)")
    row("batch, cache on, warm: the cohort scored again (100% repeats)", f"{warm:,.0f} profiles/s",
        f">= 20x off: {'met' if warm >= 20 * off else 'NOT met'} ({warm / off:.1f}x)")
    row("the same warm batch with the cyclic GC running", f"{warm_gc:,.0f} profiles/s",
        f"{warm_gc / off:.1f}x off")

    # memory over many calls, cache off
    mem_rec = backcare.Recommender(cache_size=0)
    for p in profiles[:1000]:
        mem_rec.recommend(p)
    before = rss()
    for i in range(calls):
        mem_rec.recommend(profiles[i % n])
    after = rss()
    growth = (after - before) / MiB
    row(f"RSS before / after {calls:,} recommend() calls (cache off)",
        f"{before / MiB:.1f} MiB / {after / MiB:.1f} MiB",
        f"growth < 5 MiB: {'met' if growth < 5 else 'NOT met'} ({growth:+.2f} MiB)")

    # recommenders built and dropped: each must give its engine memory back
    builds = 300 if args.quick else 3_000
    for _ in range(20):
        backcare.Recommender().recommend(profiles[0])
    gc.collect()
    before = rss()
    for i in range(builds):
        backcare.Recommender().recommend(profiles[i % n])
    gc.collect()
    after = rss()
    growth = (after - before) / MiB
    row(f"RSS before / after {builds:,} Recommenders built and dropped",
        f"{before / MiB:.1f} MiB / {after / MiB:.1f} MiB",
        f"growth < 50 MiB: {'met' if growth < 50 else 'NOT met'} ({growth:+.2f} MiB)")

    if not args.no_dask:
        for workers in (1, 2):
            rate = dask_rate(profiles, workers)
            row(f"Dask recommend_frame, LocalCluster {workers} worker process(es)", f"{rate:,.0f} results/s")

    print(f"backcare benchmark{' (--quick: smoke sizes, not a measurement)' if args.quick else ''}")
    print(f"Machine: {machine()}")
    print()
    print("| measure | value | target |")
    print("|---|---|---|")
    for what, value, target in rows:
        print(f"| {what} | {value} | {target} |")
    print()
    print("Where one call's time goes (medians over the cohort, cache off):")
    print()
    print("| part | us |")
    print("|---|---|")
    print(f"| validation (`Recommender.profile`) | {validate_us:.1f} |")
    print(f"| durable-rules engine (`Engine.evaluate`, incl. backcare's rule actions) | {engine_us:.1f} |")
    print(f"| building the result (`_reasoning.build`) | {build_us:.1f} |")
    print(f"| oracle evaluation (`_oracle.evaluate`, for comparison) | {oracle_eval_us:.1f} |")
    print(f"| cache hit, whole path (validation + key + lookup), from the warm batch | {hit_us:.1f} |")
    print(f"| per profile, batch with the cache off (mean, incl. tails) | {1e6 / off:.1f} |")
    miss_us = 1e6 / off
    bound = 1 / ((1 - repeat) + repeat * hit_us / miss_us)
    print()
    print(f"A cache can only skip repeats. With a share r = {repeat:.1%} of them it can at best speed a batch "
          f"up by 1 / ((1 - r) + r * hit/miss) = {bound:.1f}x (miss = {miss_us:.0f} us, hit = {hit_us:.1f} us, "
          f"per profile in the batches above); " + (
              f"20x needs r >= {(1 - 1 / 20) / (1 - hit_us / miss_us):.1%}." if hit_us < miss_us / 20 else
              "20x is out of reach even at r = 100%: a hit costs more than 1/20 of a miss."))
    return 0


if __name__ == "__main__":
    sys.exit(main())
