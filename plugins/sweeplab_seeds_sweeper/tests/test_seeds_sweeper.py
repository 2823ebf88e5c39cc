"""The adaptive-seeds sweeper on a toy Hydra app of its own (example/toy.py: accuracies with a
known truth, in milliseconds): where it spends seeds, that a kill -9 loses nothing and changes
nothing, that launchers do not change decisions, failures, a second command, bad settings, and
the sequential procedure's error rate by simulation."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from hydra_plugins.sweeplab_seeds_sweeper import DECISIONS, RECORDS
from hydra_plugins.sweeplab_seeds_sweeper._simulation import simulate

EXAMPLE = Path(__file__).resolve().parents[1] / "example"
GRID = ["large=0,1", "none=0,1", "small=0,1", "hydra.sweeper.detect=0.01"]


def sweep(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "toy.py", "-m", "hydra/sweeper=sweeplab_seeds", *args,
         f"hydra.sweep.dir={folder}"],
        cwd=EXAMPLE, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def decisions(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / DECISIONS).set_index(["factor", "level"])


def records(folder: Path) -> dict[str, dict]:
    found = {}
    for path in (folder / RECORDS).glob("*.json"):
        data = json.loads(path.read_text())
        found[" ".join(data["overrides"])] = data
    return found


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("seeds") / "sweep"
    result = sweep(folder, *GRID, "hydra.sweeper.max_seeds=6")
    assert result.returncode == 0, result.stderr[-3000:]
    (folder / "stdout.txt").write_text(result.stdout)
    return folder


def test_clear_comparisons_stop_at_min_seeds_and_the_open_one_gets_more(
    uninterrupted: Path,
) -> None:
    table = decisions(uninterrupted)
    assert table.loc[("large", 1), "verdict"] == "higher" and table.loc[("large", 1), "n"] == 3
    assert table.loc[("none", 1), "verdict"] == "equivalent (within ±0.01)"
    assert table.loc[("none", 1), "n"] == 3
    assert table.loc[("small", 1), "n"] > 3  # 0.4 points in a spread of 0.4: more seeds
    assert list(pd.read_csv(uninterrupted / DECISIONS).columns[:8]) == [
        "factor", "level", "baseline", "n", "mean_diff", "ci_low", "ci_high", "verdict",
    ]  # fmt: skip
    out = (uninterrupted / "stdout.txt").read_text()
    assert "round 1: seeds 0-2 for all 8 configurations" in out
    assert "round 2: seed 3 for all 8 configurations; undecided: small=1, " in out
    # a job's value is on disk for each run: 8 configurations x the seeds each got
    assert len(records(uninterrupted)) == 8 * table.loc[("small", 1), "n"]


def test_only_the_configurations_an_open_comparison_needs_get_the_next_seed(
    tmp_path: Path,
) -> None:
    result = sweep(tmp_path / "s", "small=0,1,2", "large=0,1", "hydra.sweeper.max_seeds=5")
    assert result.returncode == 0, result.stderr[-3000:]
    table = decisions(tmp_path / "s")
    assert table.loc[("large", 1), "n"] == 3
    # small=1 and small=2 both 0.4-point effects? no: small is 0.4 per level step on 1 and 2
    opened = [f"small={lvl}" for lvl in (1, 2) if table.loc[("small", lvl), "n"] > 3]
    assert opened, table
    if len(opened) == 1:  # the decided level's configurations got no more seeds
        closed = 2 if opened == ["small=1"] else 1
        seeds = {r["overrides"][-1] for r in records(tmp_path / "s").values()
                 if f"small={closed}" in r["overrides"]}  # fmt: skip
        assert seeds == {"seed=0", "seed=1", "seed=2"}


def test_kill_9_in_round_2_then_the_same_command_gives_the_same_runs_and_decisions(
    tmp_path: Path, uninterrupted: Path
) -> None:
    folder = tmp_path / "sweep"
    args = [*GRID, "hydra.sweeper.max_seeds=6", "sleep=0.05"]
    command = [sys.executable, "toy.py", "-m", "hydra/sweeper=sweeplab_seeds", *args,
               f"hydra.sweep.dir={folder}"]  # fmt: skip
    process = subprocess.Popen(command, cwd=EXAMPLE, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while len(records(folder)) < 26 and time.monotonic() < deadline:  # into round 2
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    killed = len(records(folder))
    assert 24 < killed < len(records(uninterrupted)), killed
    again = sweep(folder, *args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "round 2: seed 3 for all 8 configurations" in again.stdout
    jobs = {key.replace("sleep=0.05 ", "") for key in records(folder)}
    assert len(jobs) == len(records(folder))
    assert jobs == set(records(uninterrupted))  # nothing twice, none lost
    assert decisions(folder).equals(decisions(uninterrupted))


def test_the_joblib_launcher_makes_the_same_decisions(tmp_path: Path, uninterrupted: Path) -> None:
    result = sweep(tmp_path / "s", *GRID, "hydra.sweeper.max_seeds=6", "hydra/launcher=joblib",
                   "hydra.launcher.n_jobs=2")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert decisions(tmp_path / "s").equals(decisions(uninterrupted))


def test_a_task_that_fails_is_reported_as_failed_not_as_a_value(tmp_path: Path) -> None:
    result = sweep(tmp_path / "s", "large=0,1", "fail_seed=1", "hydra.sweeper.max_seeds=4")
    assert result.returncode == 0, result.stderr[-3000:]
    failed = [r for r in records(tmp_path / "s").values() if r["status"] == "failed"]
    assert len(failed) == 2 and all(r["value"] is None for r in failed)
    assert "seed 1 fails, as asked" in failed[0]["error"]
    assert "2 failed" in result.stdout and "failed: " in result.stderr
    row = decisions(tmp_path / "s").loc[("large", 1)]
    assert row["verdict"] == "higher" and row["n"] == 2  # seeds 0 and 2: the failed one left out


def test_a_second_command_on_the_same_sweep_does_no_work_twice(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    (folder / RECORDS).mkdir(parents=True)
    with (folder / RECORDS / "lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a running command holds it
        result = sweep(folder, "large=0,1")
    assert result.returncode == 0
    assert "another command is running this sweep" in result.stderr
    assert not records(folder)


def test_bad_settings_are_one_line_before_any_job(tmp_path: Path) -> None:
    result = sweep(tmp_path / "s", "large=0,1", "hydra.sweeper.min_seeds=1")
    assert result.returncode == 2 and "need 2 <= min_seeds <= max_seeds" in result.stderr
    nothing = sweep(tmp_path / "t", "seed=0,1,2")
    assert nothing.returncode == 2 and "nothing to compare" in nothing.stderr
    assert not (tmp_path / "s" / RECORDS).exists()


# --- the procedure's error rate, by simulation -----------------------------------------------


@pytest.mark.slow
def test_under_no_effect_a_comparison_is_called_different_at_most_5_percent_of_the_time() -> None:
    """However many rounds look (8 here), no more than alpha; the same data tested at 5 % after
    every round, without spending, would call far more."""
    sims = 300
    result = simulate(sims, 0.0, 2, 9)
    false = result["verdict"].isin(["higher", "lower"]).sum()
    assert false / sims <= 0.05 + 3 * (0.05 * 0.95 / sims) ** 0.5, false
    assert (result["seeds"] == 9).mean() > 0.9  # under no effect nearly all run to max_seeds
    # the check can fail: a plain 5 % t-test after every round, on the same kind of data
    import numpy as np
    from scipy import stats

    d = np.random.default_rng(5).normal(0.0, 1.0, (2000, 9))
    looked = [stats.ttest_1samp(d[:, :n], 0.0, axis=1).pvalue < 0.05 for n in range(2, 10)]
    assert np.any(looked, axis=0).mean() > 0.05 + 3 * (0.05 * 0.95 / 2000) ** 0.5


@pytest.mark.slow
def test_a_large_effect_stops_early_and_a_real_one_is_found() -> None:
    result = simulate(100, 4.0, 2, 9, seed=1)
    assert (result["verdict"] == "higher").mean() > 0.95 and result["seeds"].mean() < 5
