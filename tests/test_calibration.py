"""The report's error rates, shown by simulation with known truth (analysis/calibration.py):
simulated sweeps whose seeds respond to each key in their own way, balanced and unbalanced
grids, 2 to 5 seeds. Statistics on synthetic tables only: no training, a few seconds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.calibration import (
    SCENARIOS,
    Scenario,
    calibrate,
    monte_carlo_error,
    simulate,
)
from analysis.comparisons import ALPHA, compare_factors, finish

SIMS = 2000  # per scenario: a rate near 5 % is known to ± 0.5 points (one standard error)
LIMIT = 3  # standard errors of Monte Carlo error a calibrated rate may stray by


@pytest.fixture(scope="module")
def rates() -> pd.DataFrame:
    return pd.DataFrame([calibrate(s, SIMS, seed=i) for i, s in enumerate(SCENARIOS)])


def test_per_key_tests_keep_their_nominal_5_percent_under_no_effect(rates: pd.DataFrame) -> None:
    margin = LIMIT * monte_carlo_error(ALPHA, SIMS)
    for scenario, rate in zip(rates["scenario"], rates["false positives, now"], strict=True):
        assert abs(rate - ALPHA) <= margin, (scenario, rate)
    assert (rates["sweeps"] >= 0.9 * SIMS).all()  # unbalanced sweeps still compare (most)


def test_counting_runs_of_one_seed_as_pairs_fails_the_same_check(rates: pd.DataFrame) -> None:
    """The check can fail: the rule before this version (every (seed, other key) pair a
    replicate) rejects true nulls far more often than 5 %, and its intervals cover the truth
    far less often than 95 %, on the same sweeps."""
    margin = LIMIT * monte_carlo_error(ALPHA, SIMS)
    assert (rates["false positives, before"] > ALPHA + margin).all(), rates
    assert (rates["95 % CI coverage, before"] < 1 - ALPHA - margin).all(), rates


def test_95_percent_intervals_cover_the_true_difference(rates: pd.DataFrame) -> None:
    margin = LIMIT * monte_carlo_error(1 - ALPHA, SIMS)
    for scenario, rate in zip(rates["scenario"], rates["95 % CI coverage, now"], strict=True):
        assert abs(rate - (1 - ALPHA)) <= margin, (scenario, rate)


def test_equivalence_is_declared_at_most_5_percent_of_the_time_at_exactly_d(
    rates: pd.DataFrame,
) -> None:
    margin = LIMIT * monte_carlo_error(ALPHA, SIMS)
    assert (rates["equivalent at exactly ±0.002"] <= ALPHA + margin).all(), rates


def test_the_reports_verdicts_keep_the_family_wise_error_with_equivalence_and_holm() -> None:
    """The whole path a report takes (compare_factors, finish) with --detect D: a key `a`
    whose level 1 has no effect and whose level 2 lies exactly at the margin D, a key `b`
    without effect. Any `higher`/`lower` for a=1 or b, or `equivalent` for a=2, is a false
    verdict; at most 5 % of sweeps may have one."""
    detect, sims, rng = 0.002, 300, np.random.default_rng(7)
    sweeps = simulate(Scenario(3, 3, balanced=True), sims, (0.0, 0.0, detect), rng)
    false = 0
    for _, runs in sweeps.groupby("sim"):
        raw = compare_factors(runs, ["a", "b"], "value", {"a": 0, "b": 0}, detect=detect)
        table = finish(raw, detect)
        at_margin = (table["factor"] == "a") & (table["level"].astype(int) == 2)
        wrong = table["verdict"].str.startswith(("higher", "lower")) & ~at_margin
        wrong |= at_margin & table["verdict"].str.startswith("equivalent")
        false += bool(wrong.any())
    assert false / sims <= ALPHA + LIMIT * monte_carlo_error(ALPHA, sims), false
