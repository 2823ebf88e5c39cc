"""The report's comparisons on simulated sweeps with known truth: error rates, shown.

    python analysis/calibration.py            # the table of docs/reports.md (4,000 sweeps each)
    python analysis/calibration.py --sims 500 # quicker, coarser

Each simulated sweep crosses a key `a` (levels 0 and 1, baseline 0) with a key `b` (2 or 3
levels) on 2 to 5 seeds, as real sweeps do: every seed has its own offset, its own response to
each level of `a` and of `b` (same data order, same initialisation), and each run a little
noise of its own. The per-key comparison of a=1 against a=0 is made by the report's own code
(`comparisons.seed_differences` and `paired_tests`); "before" is the rule the report used
until this version, a paired t-test that counted every (seed, b) pair as a replicate.
tests/test_calibration.py runs the same simulation with fewer sweeps and checks the rates.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

if __package__ in (None, ""):  # run as a script: make `analysis` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.comparisons import ALPHA, paired_tests, seed_differences

# The spread of a real sweep's parts (accuracy units), of the size the flagship study shows:
SEED_SD = 0.004  # a seed's own offset: shared by every run of the seed
RESPONSE_SD = 0.003  # a seed's own response to a level of a key: the key x seed interaction
RUN_SD = 0.0005  # what one run adds alone: runs of a seed that differ in a key that barely
# matters are near copies
DROPPED = 0.2  # in an unbalanced sweep, each run is missing with this probability
EFFECT = 0.003  # the true difference whose interval coverage is measured


@dataclass(frozen=True)
class Scenario:
    seeds: int
    b_levels: int
    balanced: bool

    def __str__(self) -> str:
        grid = "balanced" if self.balanced else f"unbalanced ({DROPPED:.0%} of runs missing)"
        return f"{self.seeds} seeds, 2 x {self.b_levels} grid, {grid}"


SCENARIOS = [
    Scenario(seeds, b_levels, balanced)
    for seeds in (2, 3, 5)
    for b_levels, balanced in ((2, True), (3, False))
]


def simulate(
    scenario: Scenario, sims: int, effects: Sequence[float], rng: np.random.Generator
) -> pd.DataFrame:
    """`sims` sweeps as one frame (columns sim, seed, a, b, value): level i of `a` is
    `effects[i]` above level 0 on average over seeds, on every level of b."""
    sim, seed, a, b = np.meshgrid(
        np.arange(sims), np.arange(scenario.seeds), np.arange(len(effects)),
        np.arange(scenario.b_levels), indexing="ij",
    )  # fmt: skip
    shape = sim.shape
    offset = rng.normal(0, SEED_SD, shape[:2])[..., None, None]
    response_a = rng.normal(0, RESPONSE_SD, shape[:3])[..., None]
    response_b = rng.normal(0, RESPONSE_SD, (*shape[:2], 1, shape[3]))
    truth = np.asarray(effects, dtype=float)[a] - effects[0]
    value = 0.88 + truth + offset + response_a + response_b + rng.normal(0, RUN_SD, shape)
    runs = pd.DataFrame({"sim": sim.ravel(), "seed": seed.ravel(), "a": a.ravel(),
                         "b": b.ravel(), "value": value.ravel()})  # fmt: skip
    if not scenario.balanced:
        runs = runs[rng.random(len(runs)) >= DROPPED]
    return runs


def seed_unit_tests(runs: pd.DataFrame, detect: float | None = None) -> pd.DataFrame:
    """The report's per-key comparison of a=1 against a=0 in every simulated sweep (one row per
    sweep with two or more seeds that have both levels): mean_diff, ci_low, ci_high, p, p_equiv."""
    per_seed, _ = seed_differences(runs, "a", 1, 0, ["b"], "value", unit=["sim", "seed"])
    per_seed = per_seed.rename("d").reset_index()
    per_seed["column"] = per_seed.groupby("sim").cumcount()
    counts = per_seed.groupby("sim")["d"].size()
    results = []
    for n in sorted(set(counts[counts >= 2])):  # sweeps with n seeds as one matrix
        chosen = per_seed[per_seed["sim"].isin(counts.index[counts == n])]
        matrix = chosen.pivot(index="sim", columns="column", values="d")
        results.append(pd.DataFrame(paired_tests(matrix.to_numpy(), detect), index=matrix.index))
    return pd.concat(results)


def pairs_as_units(runs: pd.DataFrame) -> pd.DataFrame:
    """The rule before: a paired t-test over every (seed, b) pair, as if independent."""
    a = runs[runs["a"] == 1].set_index(["sim", "seed", "b"])["value"]
    b = runs[runs["a"] == 0].set_index(["sim", "seed", "b"])["value"]
    pairs = (a - b).dropna().rename("d").reset_index()
    pairs["column"] = pairs.groupby("sim").cumcount()
    counts = pairs.groupby("sim")["d"].size()
    results = []
    for n in sorted(set(counts[counts >= 2])):
        chosen = pairs[pairs["sim"].isin(counts.index[counts == n])]
        matrix = chosen.pivot(index="sim", columns="column", values="d")
        results.append(pd.DataFrame(paired_tests(matrix.to_numpy()), index=matrix.index))
    return pd.concat(results)


def calibrate(scenario: Scenario, sims: int, seed: int = 0, detect: float = 0.002) -> dict:
    """Observed rates of one scenario: false positives under no effect and the 95 % interval's
    coverage at an effect of EFFECT (now and before), and `equivalent` declared at an effect
    of exactly `detect` (TOST's false-positive rate at its boundary)."""
    rng = np.random.default_rng(seed)
    null = simulate(scenario, sims, (0.0, 0.0), rng)
    now = seed_unit_tests(null)
    effect = simulate(scenario, sims, (0.0, EFFECT), rng)
    boundary = seed_unit_tests(simulate(scenario, sims, (0.0, detect), rng), detect)
    return {
        "scenario": str(scenario),
        "false positives, before": float((pairs_as_units(null)["p"] < ALPHA).mean()),
        "false positives, now": float((now["p"] < ALPHA).mean()),
        "95 % CI coverage, before": _coverage(pairs_as_units(effect)),
        "95 % CI coverage, now": _coverage(seed_unit_tests(effect)),
        f"equivalent at exactly ±{detect:g}": float((boundary["p_equiv"] < ALPHA).mean()),
        "sweeps": len(now),
    }


def _coverage(tests: pd.DataFrame) -> float:
    """How often the 95 % interval holds the true difference, EFFECT."""
    return float(((tests["ci_low"] <= EFFECT) & (tests["ci_high"] >= EFFECT)).mean())


def monte_carlo_error(rate: float, sims: int) -> float:
    """The standard error of an observed rate over `sims` independent sweeps."""
    return math.sqrt(rate * (1 - rate) / sims)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sims", type=int, default=4000, help="sweeps per scenario")
    args = parser.parse_args(argv)
    table = pd.DataFrame([calibrate(s, args.sims, seed=i) for i, s in enumerate(SCENARIOS)])
    print(table.to_markdown(index=False, floatfmt=".3f"))
    error = monte_carlo_error(ALPHA, args.sims)
    print(f"\nnominal: {ALPHA:.3f} false positives, {1 - ALPHA:.3f} coverage; Monte Carlo "
          f"error of a rate near {ALPHA}: ± {error:.3f} (1 se)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
