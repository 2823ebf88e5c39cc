"""The sequential procedure on simulated sweeps with known truth: its error rate under no
effect, how often it decides, and the seeds it spends against a fixed design of the same power.

    python -m hydra_plugins.sweeplab_seeds_sweeper._simulation        # the table of the docs
    python -m hydra_plugins.sweeplab_seeds_sweeper._simulation --sims 200

Each simulated sweep is one key with two levels whose per-seed difference is normal with sd 1
and mean `effect` (in sd units), decided by `_sequential.replay`, the code the sweeper runs.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from hydra_plugins.sweeplab_seeds_sweeper._sequential import replay
from hydra_plugins.sweeplab_seeds_sweeper._stats import ALPHA, paired_power

CONFIGURATIONS = [{"a": "0"}, {"a": "1"}]


def simulate(sims: int, effect: float, min_seeds: int, max_seeds: int,
             detect: float | None = None, seed: int = 0) -> pd.DataFrame:  # fmt: skip
    """One row per simulated sweep: its verdict and the seeds it spent."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(sims):
        values = np.zeros((2, max_seeds))
        values[1] = rng.normal(effect, 1.0, max_seeds)  # the per-seed differences

        def value_of(index: int, seed: int, values: np.ndarray = values) -> float:
            return float(values[index, seed])

        done, _ = replay(value_of, CONFIGURATIONS, ["a"], {"a": "0"}, list(range(min_seeds)),
                         max_seeds, detect, ALPHA)  # fmt: skip
        row = done[-1].decisions.iloc[0]
        rows.append({"verdict": row["verdict"], "seeds": int(row["n"])})
    return pd.DataFrame(rows)


def fixed_seeds_for(power: float, effect: float, limit: int = 200) -> int | None:
    """The seeds a fixed design (one paired t-test at ALPHA) needs for `power` at `effect`."""
    return next((n for n in range(2, limit) if paired_power(n, effect) >= power), None)


def table(sims: int, min_seeds: int = 2, max_seeds: int = 10) -> pd.DataFrame:
    rows = []
    for effect in (0.0, 1.0, 2.0, 4.0):
        result = simulate(sims, effect, min_seeds, max_seeds, seed=int(effect * 10))
        called = result["verdict"].isin(["higher", "lower"]).mean()
        right = (result["verdict"] == "higher").mean()
        fixed = fixed_seeds_for(min(right, 0.99), effect) if effect else None
        rows.append({
            "true difference (sd of per-seed differences)": effect,
            "called higher or lower": called,
            "called higher (power)": right if effect else None,
            "mean seeds spent": result["seeds"].mean(),
            "fixed design of the same power (at most 0.99): seeds": fixed,
        })  # fmt: skip
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sims", type=int, default=2000)
    args = parser.parse_args()
    print(table(args.sims).to_markdown(index=False, floatfmt=".3g"))


if __name__ == "__main__":
    main()
