"""The benchmark script must keep running: a smoke run at small sizes, not a timing test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


@pytest.mark.slow
def test_bench_quick_prints_the_table():
    pytest.importorskip("distributed", reason="the Dask rows need the dask extra: pip install backcare[dask]")
    done = subprocess.run([sys.executable, str(BENCH), "--quick"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "| measure | value | target |" in out
    for label in (
        "recommend() miss (cache off) p50 / p95",
        "recommend() hit (warm cache) p50",
        "hand-written baseline p50",
        "oracle p50",
        "miss / baseline, miss / oracle (p50)",
        "import backcare",
        "default Recommender() load",
        "repeat rate",
        "batch, cache off",
        "batch, cache on, starting empty",
        "profile-cache hits / signature hits / evaluated (assembled from parts)",
        "batch, cache on, warm",
        "with the cyclic GC running",
        "hand-written baseline, the same cohort",
        "RSS before / after 3,000 recommend() calls (cache off)",
        "RSS before / after 3,000 recommend() calls (cache on)",
        "Recommenders built and dropped",
        "in this process: recommend_many",
        "Dask recommend_frame with result_json (the default), LocalCluster 1 worker",
        "Dask recommend_frame with result_json (the default), LocalCluster 2 worker",
        "Dask recommend_frame result_json=False, LocalCluster 1 worker",
        "Dask recommend_frame result_json=False, LocalCluster 2 worker",
        "Where one miss's time goes",
    ):
        assert label in out, label
    # every target is judged: miss, hit, miss / oracle, load, cold pass, warm pass, three RSS rows, and the two
    # Dask rows with result_json and without it
    assert out.count(": met") + out.count(": NOT met") == 13
