"""The benchmark scripts run as written (their --quick modes) and write the tables they print."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT


def run_benchmark(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.benchmark
def test_time_to_accuracy_runs_every_seed_and_compares_both_pipelines(tmp_path: Path) -> None:
    result = run_benchmark("time_to_accuracy.py", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    epochs = pd.read_csv(tmp_path / "time_to_accuracy_epochs.csv")
    assert set(epochs["pipeline"]) == {"sweeplab default", "course pipeline"}
    assert (epochs["train_s"] > 0).all() and epochs["test_accuracy"].between(0, 1).all()
    assert (epochs["wall_s"] > epochs["cumulative_train_s"]).all()  # start-up counted
    table = pd.read_csv(tmp_path / "time_to_accuracy.csv")
    assert list(table["pipeline"])[-1] == "speed-up (course / ours)"
    assert re.search(r"\| pipeline +\| s to 88% +\|", result.stdout)  # the Markdown table
    seeds = pd.read_csv(tmp_path / "time_to_accuracy_seeds.csv")
    assert list(seeds["seed"]) == ["0", "mean", "min"]
    split = ["startup s", "data s", "train s", "eval s", "figures s"]
    assert (seeds.loc[0, split] > 0).all() and seeds.loc[0, "command wall s"] > seeds.loc[
        0, split
    ].sum()


@pytest.mark.benchmark
def test_throughput_measures_train_and_eval_with_and_without_compile(tmp_path: Path) -> None:
    # One model: compiling is most of the cost, and every model goes through the same code.
    result = run_benchmark("throughput.py", "--models", "mlp", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(tmp_path / "throughput.csv")
    assert set(table["model"]) == {"mlp"} and set(table["compile"]) == {True, False}
    assert (table["train img/s"] > 0).all() and (table["eval img/s"] > 0).all()
    assert (table.loc[table["compile"], "compile s"] > 0).all()


@pytest.mark.benchmark
def test_profile_step_lists_the_operators_that_take_a_steps_time(tmp_path: Path) -> None:
    # Every operator listed (--top 1000), so no check depends on how the machine's load ranks
    # them: a busy machine reorders the operators, never drops one.
    result = run_benchmark(
        "profile_step.py", "--model", "lenet5_classic", "--top", "1000", "--out", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(tmp_path / "profile_step.csv")
    assert table["ms per step"].is_monotonic_decreasing and (table["% of step"] <= 100).all()
    assert table["% of step"].sum() == pytest.approx(100, abs=0.1 * len(table))  # rounded shares
    # the classic LeNet-5's first convolution, at its native 32x32 input and the quick batch
    assert (table["input shapes"].str.startswith("32x1x32x32")).any()
    assert "Training step of lenet5_classic, batch 32" in result.stdout


@pytest.mark.benchmark
def test_sweep_benchmark_times_both_launchers(tmp_path: Path) -> None:
    result = run_benchmark("sweep.py", "--sweeps", str(tmp_path / "sweeps"), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(tmp_path / "sweep.csv")
    assert list(table["launcher"]) == ["basic", "joblib"]
    assert (table["runs"] == 4).all() and (table["wall s"] > 0).all()
    assert (table["data load s per run"] < 5).all()


@pytest.mark.benchmark
def test_trackers_benchmark_times_each_loggers_hooks_beside_training(tmp_path: Path) -> None:
    result = run_benchmark("trackers.py", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(tmp_path / "trackers.csv").set_index("logger")
    assert list(table.index) == ["none", "tensorboard", "mlflow"]
    assert table.loc["none", "tracker s"] == 0 and (table["train s"] > 0).all()
    assert (table.loc[["tensorboard", "mlflow"], "per epoch s"] > 0).all()


@pytest.mark.benchmark
def test_search_benchmark_compares_each_search_with_the_unpruned_one_of_its_seed(
    tmp_path: Path,
) -> None:
    # A search of two worker commands beside the unpruned one of one command: the script's
    # two ways of running a search (the other ways differ from these in config values only;
    # tests/test_search.py runs a joblib worker).
    ways = ["no pruning", "median pruner, 2 worker commands x 1 thread"]
    seeds = ["--seeds", "0", "--pruned-trials", "5"]  # one seed: the comparison within it
    result = run_benchmark("search.py", *seeds, "--only", *ways, "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(tmp_path / "search.csv")
    runs, means = table[table["seed"] != "mean"], table[table["seed"] == "mean"]
    assert list(runs["search"]) == ways and means.empty  # one seed: no means (tested below)
    unpruned, pruned = runs[runs["search"] == "no pruning"], runs[runs["search"] != "no pruning"]
    assert (unpruned["trials"] == 4).all() and (pruned["trials"] == 5).all()
    assert (runs["train s"] > 0).all() and runs["best val acc"].between(0, 1).all()
    assert (unpruned["pruned"] == 0).all()
    assert (unpruned["first 4: train s vs no pruning"] == 1).all()
    assert (unpruned["first 4: best vs no pruning (points)"] == 0).all()
    # a search's first 4 trials are part of it: no more seconds, no better best than all of it
    base_s = unpruned.set_index("seed")["train s"]
    first_s = pruned["first 4: train s vs no pruning"] * pruned["seed"].map(base_s)
    assert (first_s <= pruned["train s"] + 1e-9).all()
    base_best = pruned["seed"].map(unpruned.set_index("seed")["best val acc"])
    first_best = base_best + pruned["first 4: best vs no pruning (points)"] / 100
    assert (first_best <= pruned["best val acc"] + 1e-9).all()
    # the target is the share of seconds until a best within 0.3 points of the unpruned one
    share = pruned["... vs no pruning's train s"]
    assert (pruned["target met"] == share.le(0.5).map({True: "yes", False: "no"})).all()
    assert (unpruned["target met"] == "-").all()  # its share is its own clock, not a target


def test_search_benchmark_means_each_search_over_its_seeds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import search  # benchmarks/search.py

    rows = [
        {"search": "no pruning", "seed": 0, "train s": 10.0, "target met": "-"},
        {"search": "median", "seed": 0, "train s": 11.0, "target met": "no"},
        {"search": "no pruning", "seed": 1, "train s": 20.0, "target met": "-"},
        {"search": "median", "seed": 1, "train s": 21.0, "target met": "yes"},
    ]
    means = {row["search"]: row for row in search.mean_rows(rows)}
    assert means["no pruning"]["train s"] == pytest.approx(15.0)
    assert means["median"]["train s"] == pytest.approx(16.0)
    assert means["no pruning"]["target met"] == "-" and means["median"]["target met"] == "1/2"


def test_search_benchmark_gives_a_search_without_a_completed_trial_no_best_and_no_target(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import search  # benchmarks/search.py

    base = {"best val acc": 0.9, "train s": 10.0, "epochs trained": 8}
    pruned = {"status": "pruned", "trial": 0, "best_val_accuracy": 0.85, "train_seconds": 1.0,
              "epochs_completed": 1, "finished_at": "2026-11-30T12:00:00+00:00"}  # fmt: skip
    row = {"_runs": [pruned], "_started_at": datetime.fromisoformat("2026-11-30T11:59:00+00:00")}
    search.against_no_pruning(row, base, trials=1)
    assert math.isnan(search.best_completed([pruned]))
    assert math.isnan(row["train s to within 0.3 of no pruning's best"])
    assert row["target met"] == "no" and math.isnan(row["first 1: best vs no pruning (points)"])
    assert row["first 1: epochs vs no pruning"] == 1 / 8


def test_search_benchmark_refuses_fewer_pruned_trials_than_unpruned_before_any_search() -> None:
    result = run_benchmark("search.py", "--pruned-trials", "2")
    assert result.returncode == 2 and "search.csv" not in result.stdout
    assert "--pruned-trials 2: at least the unpruned search's 4" in result.stderr
