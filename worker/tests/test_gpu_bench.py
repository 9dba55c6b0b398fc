"""worker/bench/gpu_bench.py's batching mode, run in its tiny CPU mode: the script a GPU session runs must work
before one is lent (its figures here measure nothing; docs/benchmarks.md has the real ones when there are)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.gpu_bench import main


def test_the_batching_bench_runs_batches_against_one_job_at_a_time_without_falling_back(tmp_path: Path) -> None:
    output = tmp_path / "batching.json"
    assert main(["--batching", "--tiny", "--batch-sizes", "1,2", "--repeats", "1", "--json", str(output)]) == 0
    results = json.loads(output.read_text(encoding="utf-8"))["results"]
    assert [row["family"] for row in results] == ["sd1", "sdxl"]
    for row in results:
        assert row["fallbacks"] == 0
        assert row["batch_1"]["ratio"] == 1.0
        assert row["batch_2"]["images_per_s"] > 0 and row["batch_2"]["ms_per_batch"] > 0
