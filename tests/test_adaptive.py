"""sweeplab's run.py under the adaptive-seeds sweeper: a real sweep whose report shows the
sweeper's verdicts and seeds, and a dry run that lists the next round."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import run_sweep

ADAPTIVE = ["hydra/sweeper=sweeplab_seeds", "hydra.sweeper.min_seeds=2",
            "hydra.sweeper.max_seeds=3", "hydra.sweeper.detect=0.05", "epochs=1",
            "regularization.noise_std=0,0.6"]  # fmt: skip


@pytest.mark.slow
def test_an_adaptive_sweeps_report_shows_the_sweepers_verdicts_and_seeds(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    plan = run_sweep(sweep, *ADAPTIVE, "dry_run=true")
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert "0 round(s) done; 4 job(s) in the next round; nothing ran" in plan.stdout
    assert not list(sweep.glob("*/summary.json"))
    result = run_sweep(sweep, *ADAPTIVE)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "round 1: seeds 0-1 for all 2 configurations" in result.stdout
    decided = pd.read_csv(sweep / "decisions.csv").iloc[0]
    table = pd.read_csv(sweep / "report" / "comparisons.csv")
    row = table[table["factor"] == "regularization.noise_std"].iloc[0]
    assert (row["verdict"], row["n"]) == (decided["verdict"], decided["n"])
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((decided["ci_low"], decided["ci_high"]))
    assert row["test"].startswith("sequential")
    text = (sweep / "report" / "report.md").read_text()
    assert "## Adaptive seeds" in text and "seeds each configuration got" in text
    short = text[text.index("## In short") :].split("\n## ")[0]
    assert f"**{decided['verdict']}**" in short and f"({int(decided['n'])} seeds" in short
    again = run_sweep(sweep, *ADAPTIVE, "dry_run=true")
    assert "0 job(s) in the next round" in again.stdout  # over: the plan says so, runs nothing
