"""Comparisons that decide, with the seed as the unit of replication: the statistics of
sweeplab's reports (`analysis/comparisons.py` imports them from here) and of this sweeper's
rounds, in one place, without torch.

Runs that share a seed share their data order and their initialisation, so they are never
independent replicates. A comparison of level L of a key against its baseline B first reduces
the runs to one difference per seed: the mean, over the cells (values of the other swept keys)
that both levels have on that seed, of L - B. The test, the interval, the power and the seeds a
difference needs come from those per-seed differences, and n counts seeds. This is the
randomised block design with the seed as block: the key x seed interaction is the error term
(Montgomery, *Design and Analysis of Experiments*, ch. 4).

Verdicts: `higher` / `lower` (paired t-test over seeds), `equivalent (within ±D)` (Schuirmann's
two one-sided tests against the smallest difference that matters, D = `--detect`), `undecided`,
`too few seeds (n)`. Holm's step-down runs over every difference and equivalence hypothesis of
the report at once; as a comparison's "no difference" and "a difference of at least D" cannot
both be true, at most one null per comparison is true, and the step-down's divisor never
exceeds the number of comparisons (Shaffer 1986's logical restriction). sweeplab's
docs/reports.md says why, and its tests/test_calibration.py shows the error rates by
simulation; `alpha` is a parameter so that the sweeper can spend its level over its looks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import optimize, stats

REPLICATE = "seed"  # the unit of replication: never a factor of a comparison
ALPHA = 0.05  # the level of every test and (1 - ALPHA) of every interval
POWER = 0.8  # for the smallest detectable difference and the seeds a difference needs
# comparisons.csv: its twelve columns as they always were, then the ones this version added
COMPARISON_COLUMNS = ["metric", "factor", "level", "baseline", "n", "mean_diff", "ci_low",
                      "ci_high", "p", "p_holm", "verdict", "test", "p_equiv", "p_equiv_holm",
                      "sd_diff", "seeds_to_decide", "left_out"]  # fmt: skip
RAW_COLUMNS = ["factor", "level", "baseline", "n", "mean_diff", "ci_low", "ci_high", "p", "test",
               "p_equiv", "sd_diff", "left_out"]  # fmt: skip
PAIRED = "paired t over seeds"
WELCH = "Welch over seed means (no seed has both levels)"

# Values closer than this are equal: a difference of whole test images is never this small,
# float noise in a subtraction always is.
SAME = 1e-12

# The `test` of a comparison without spread, by (paired?, no difference?).
CERTAIN = {
    (True, True): "paired: identical on every seed",
    (True, False): "paired: the same difference on every seed",
    (False, True): "Welch: every seed of both levels identical",
    (False, False): "Welch: no spread in either level",
}
CERTAIN_TESTS = tuple(CERTAIN.values())


def _same(column: pd.Series, value: object) -> pd.Series:
    return column.astype(str) == str(value)


def _cell_means(
    runs: pd.DataFrame, factor: str, level: object, by: list[str], value: str
) -> pd.Series:
    """`value` at `level`, one number per cell of `by` (the mean where a cell has several)."""
    rows = runs[_same(runs[factor], level)].dropna(subset=[value]).astype({k: str for k in by})
    if not by:
        return rows[value].reset_index(drop=True)
    return rows.groupby(by, sort=True)[value].mean()


def _unit_of(runs: pd.DataFrame, unit: Sequence[str] | None) -> list[str]:
    return list(unit) if unit is not None else ([REPLICATE] if REPLICATE in runs else [])


def seed_differences(
    runs: pd.DataFrame, factor: str, level: object, baseline: object, matched_on: Sequence[str],
    value: str, unit: Sequence[str] | None = None,
) -> tuple[pd.Series, list[str]]:  # fmt: skip
    """Per seed: `value` at `level` minus at `baseline`, averaged over the cells of `matched_on`
    (the other swept keys) that both levels have on that seed; and the cells left out (one
    level only). `unit` is the seed column (`[sim, seed]` in the calibration); runs without
    a seed are each their own unit."""
    unit = _unit_of(runs, unit)
    keys = [k for k in matched_on if k in runs and k not in unit]
    by = [*unit, *keys]
    a = _cell_means(runs, factor, level, by, value)
    b = _cell_means(runs, factor, baseline, by, value)
    if not by:  # nothing to match on: no pairs
        return pd.Series(dtype=float), []
    both = a.index.intersection(b.index)
    differences = a.loc[both] - b.loc[both]
    alone = [(level, cell) for cell in a.index.difference(b.index)]
    alone += [(baseline, cell) for cell in b.index.difference(a.index)]
    left_out = [_cell_name(factor, at, by, cell) for at, cell in alone]
    if not unit:
        return differences.reset_index(drop=True), left_out
    return differences.groupby(level=list(range(len(unit))), sort=True).mean(), left_out


def _cell_name(factor: str, level: object, by: list[str], cell: object) -> str:
    values = cell if isinstance(cell, tuple) else (cell,)
    named = dict(zip(by, values, strict=True))
    seed = named.pop(REPLICATE, None)
    where = ", ".join(f"{k}={v}" for k, v in [(factor, level), *named.items()])
    return f"{where}{f' (seed {seed})' if seed is not None else ''}"


LISTED = 6  # cells named in `left_out`; the rest are counted


def _listed(names: list[str]) -> str:
    shown = "; ".join(names[:LISTED])
    return shown + (f"; and {len(names) - LISTED} more" if len(names) > LISTED else "")


def _seed_means(runs: pd.DataFrame, factor: str, level: object, keys: list[str], value: str,
                unit: list[str]) -> pd.Series:  # fmt: skip
    """`value` at `level` per seed: the mean over its cells (each run its own without seeds)."""
    cells = _cell_means(runs, factor, level, [*unit, *keys], value)
    if not unit:
        return cells
    return cells.groupby(level=list(range(len(unit)))).mean()


def _constant(values: np.ndarray) -> bool:
    """Every value equal (to float noise): a t statistic would be 0/0 and scipy's p NaN."""
    return bool(values.max() - values.min() <= SAME)


def _certain(difference: float, paired: bool, detect: float | None) -> dict[str, object]:
    """An unpaired comparison without spread: every seed of each level alike, so the difference
    is exact, with no uncertainty to test."""
    zero = abs(difference) <= SAME
    difference = 0.0 if zero else float(difference)
    equivalent = math.nan if detect is None else (0.0 if abs(difference) < detect else 1.0)
    return {"mean_diff": difference, "ci_low": difference, "ci_high": difference,
            "p": 1.0 if zero else 0.0, "test": CERTAIN[paired, zero], "p_equiv": equivalent,
            "sd_diff": 0.0}  # fmt: skip


def paired_tests(
    differences: np.ndarray, detect: float | None = None, alpha: float = ALPHA
) -> dict[str, np.ndarray]:
    """The one-sample t-test of each row of per-seed differences (rows: comparisons, columns:
    seeds, two or more): mean, (1 - alpha) interval, two-sided p, sd, and the TOST p against ±detect
    (the larger of the two one-sided p; NaN without detect). A row without spread is exact:
    its interval is its one value, p is 1 for no difference and 0 for any other."""
    d = np.asarray(differences, dtype=float)
    n = d.shape[1]
    mean, sd = d.mean(axis=1), d.std(axis=1, ddof=1)
    flat = d.max(axis=1) - d.min(axis=1) <= SAME
    mean = np.where(flat & (np.abs(mean) <= SAME), 0.0, mean)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.where(flat, np.nan, sd / math.sqrt(n))
        half = stats.t.ppf(1 - alpha / 2, n - 1) * se
        p = 2 * stats.t.sf(np.abs(mean / se), n - 1)
        if detect is None:
            p_equiv = np.full(len(d), np.nan)
        else:
            above = stats.t.sf((mean + detect) / se, n - 1)  # H0: difference <= -detect
            below = stats.t.cdf((mean - detect) / se, n - 1)  # H0: difference >= +detect
            p_equiv = np.maximum(above, below)
            p_equiv = np.where(flat, (np.abs(mean) >= detect).astype(float), p_equiv)
    return {"mean_diff": mean, "ci_low": np.where(flat, mean, mean - half),
            "ci_high": np.where(flat, mean, mean + half),
            "p": np.where(flat, np.where(np.abs(mean) > SAME, 0.0, 1.0), p),
            "p_equiv": p_equiv, "sd_diff": np.where(flat, 0.0, sd)}  # fmt: skip


def paired_test(
    differences: np.ndarray, detect: float | None = None, alpha: float = ALPHA
) -> dict[str, object]:
    """`paired_tests` of one comparison's per-seed differences, as a row of the table."""
    d = np.asarray(differences, dtype=float)
    n = len(d)
    if n < 2:
        test = "one seed: no spread to test" if n else "no seed has both levels"
        return {"n": n, "mean_diff": d.mean() if n else math.nan, "ci_low": math.nan,
                "ci_high": math.nan, "p": math.nan, "test": test,
                "p_equiv": math.nan, "sd_diff": math.nan}  # fmt: skip
    tested = paired_tests(d[None, :], detect, alpha)
    row = {key: float(values[0]) for key, values in tested.items()}
    test = CERTAIN[True, row["mean_diff"] == 0] if row["sd_diff"] == 0 else PAIRED
    return {"n": n, **row, "test": test}


def welch_test(
    x: np.ndarray, y: np.ndarray, detect: float | None = None, alpha: float = ALPHA
) -> dict[str, object]:
    """Welch's test of the seed means at a level (x) against the baseline's (y)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(x) + len(y)
    if _constant(x) and _constant(y):
        return {"n": n, **_certain(x[0] - y[0], paired=False, detect=detect)}
    result = stats.ttest_ind(x, y, equal_var=False)
    interval = result.confidence_interval(1 - alpha)
    equivalent = math.nan
    if detect is not None:
        above = stats.ttest_ind(x + detect, y, equal_var=False, alternative="greater").pvalue
        below = stats.ttest_ind(x - detect, y, equal_var=False, alternative="less").pvalue
        equivalent = float(max(above, below))
    return {"n": n, "mean_diff": float(x.mean() - y.mean()), "ci_low": float(interval.low),
            "ci_high": float(interval.high), "p": float(result.pvalue), "test": WELCH,
            "p_equiv": equivalent, "sd_diff": math.nan}  # fmt: skip


def compare_levels(
    runs: pd.DataFrame, factor: str, level: object, baseline: object, matched_on: Sequence[str],
    value: str, welch: bool = True, detect: float | None = None, alpha: float = ALPHA,
) -> dict[str, object]:  # fmt: skip
    """`value` at `level` minus at `baseline`, the seed as the unit: a paired t-test over the
    per-seed differences (`seed_differences`); where no seed has both levels, Welch's test of
    the per-seed means (unless `welch` is False: runs that differ in keys no factor explains
    compare only within a seed)."""
    row: dict[str, object] = {"factor": factor, "level": level, "baseline": baseline}
    per_seed, left_out = seed_differences(runs, factor, level, baseline, matched_on, value)
    row["left_out"] = _listed(left_out)
    if len(per_seed) or not welch:
        return {**row, **paired_test(per_seed.to_numpy(), detect, alpha)}
    row["left_out"] = ""  # Welch's test uses every run of both levels
    unit = _unit_of(runs, None)
    keys = [k for k in matched_on if k in runs and k not in unit]
    x = _seed_means(runs, factor, level, keys, value, unit).to_numpy()
    y = _seed_means(runs, factor, baseline, keys, value, unit).to_numpy()
    if len(x) >= 2 and len(y) >= 2:
        return {**row, **welch_test(x, y, detect, alpha)}
    too_few = paired_test(np.array([]), detect)
    return {**row, **too_few, "n": min(len(x), len(y)),
            "mean_diff": x.mean() - y.mean() if len(x) and len(y) else math.nan}  # fmt: skip


def compare_factors(
    runs: pd.DataFrame, factors: list[str], value: str, baselines: dict[str, object],
    strata: Sequence[str] = (), detect: float | None = None, alpha: float = ALPHA,
) -> pd.DataFrame:  # fmt: skip
    """Each level of each factor against that factor's baseline level, per seed, averaged over
    the other factors and the `strata` (keys no factor explains, the sweep of pooled sweeps;
    `finish` then adds Holm's adjustment and the verdicts)."""
    rows = []
    for factor in factors:
        others = [f for f in factors if f != factor] + list(strata)
        for level in levels(runs, factor):
            if str(level) != str(baselines[factor]):
                rows.append(compare_levels(runs, factor, level, baselines[factor], others, value,
                                           unpaired_allowed(strata), detect, alpha))  # fmt: skip
    return pd.DataFrame(rows, columns=RAW_COLUMNS).assign(metric=value)


def unpaired_allowed(strata: Sequence[str]) -> bool:
    """Whether Welch's test may stand in for pairs: not when runs differ in keys no factor
    explains (only runs that agree on them are comparable); pooled sweeps alone are fine."""
    return set(strata) <= {"sweep"}


def holm(p_values: pd.Series, max_true: int | None = None) -> pd.Series:
    """Holm's step-down adjustment (NaN stays NaN). `max_true`: at most this many of the nulls
    can be true together (Shaffer), so no step divides by more."""
    valid = p_values.dropna().sort_values()
    m = len(valid)
    cap = m if max_true is None else min(m, max_true)
    multipliers = np.minimum(cap, m - np.arange(m))
    adjusted = np.minimum(1.0, np.maximum.accumulate(multipliers * valid.to_numpy()))
    return pd.Series(adjusted, index=valid.index).reindex(p_values.index)


def finish(table: pd.DataFrame, detect: float | None = None, alpha: float = ALPHA) -> pd.DataFrame:
    """Add Holm's adjustment over the whole table (one family: every comparison's difference
    and, with `detect`, equivalence hypothesis), the verdicts at level `alpha` and the seeds to
    decide."""
    table = table.reset_index(drop=True)
    p, p_equiv = table["p"].astype(float), table["p_equiv"].astype(float)
    tested = int((p.notna() | p_equiv.notna()).sum())
    both = holm(pd.concat([p, p_equiv], keys=["p", "equiv"]), max_true=tested)
    table["p_holm"] = both.loc["p"].to_numpy() if len(table) else []
    table["p_equiv_holm"] = both.loc["equiv"].to_numpy() if len(table) else []
    table["verdict"] = [verdict(row, detect, alpha) for row in table.itertuples()]
    # Holm's first step is the strictest level an undecided comparison may have to pass
    level = alpha / max(tested, 1)
    table["seeds_to_decide"] = [
        seeds_to_decide(row.n, row.mean_diff, row.sd_diff, detect, level)
        if row.verdict == "undecided"
        else math.nan
        for row in table.itertuples()
    ]
    return table[COMPARISON_COLUMNS]


def verdict(row: object, detect: float | None, alpha: float = ALPHA) -> str:
    """A comparison's verdict from its Holm-adjusted p-values (see the module's docstring)."""
    if pd.isna(row.p_holm) and pd.isna(row.p_equiv_holm):  # type: ignore[attr-defined]
        return f"too few seeds ({row.n})"  # type: ignore[attr-defined]
    if row.p_equiv_holm < alpha:  # type: ignore[attr-defined]
        return f"equivalent (within ±{detect:g})"
    if row.p_holm < alpha:  # type: ignore[attr-defined]
        return "higher" if row.mean_diff > 0 else "lower"  # type: ignore[attr-defined]
    if row.test in (CERTAIN[True, True], CERTAIN[False, True]):  # type: ignore[attr-defined]
        return "equivalent (identical results)"
    return "undecided"


def decided(verdict_text: str) -> bool:
    """Whether a verdict answers the question (higher, lower or equivalent)."""
    return verdict_text.startswith(("higher", "lower", "equivalent"))


def seeds_to_decide(
    n: int, mean_diff: float, spread: float, detect: float | None, alpha: float = ALPHA
) -> int | float:
    """Seeds an undecided comparison of n seeds would need, at its spread, to detect its own
    observed difference (or `detect`, where that is larger: the margin an equivalence must
    clear) with POWER at level `alpha` (at least one more than it has); NaN where no spread is
    known."""
    if pd.isna(spread):
        return math.nan
    target = max(abs(mean_diff), detect or 0.0)
    needed = pairs_needed(target, spread, alpha=alpha) if target > 0 else None
    return math.nan if needed is None else max(needed, n + 1)


def levels(runs: pd.DataFrame, factor: str) -> list[object]:
    """The factor's values in their natural (numeric, then text) order."""
    return sorted(runs[factor].dropna().unique(), key=natural_order)


def natural_order(value: object) -> tuple[int, float, str]:
    """Numbers by value, then text: `1e-4` before `1e-3`, both before `lenet5`."""
    try:
        return (0, float(value), "")  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def paired_power(n: int, effect: float, alpha: float = ALPHA) -> float:
    """Power of a two-sided paired t-test at level `alpha` with n seeds and effect d / sd."""
    df = n - 1
    critical = stats.t.ppf(1 - alpha / 2, df)
    shift = effect * math.sqrt(n)
    power = float(stats.nct.sf(critical, df, shift) + stats.nct.cdf(-critical, df, shift))
    return 1.0 if math.isnan(power) else power  # scipy's nct gives NaN far out in the tail


def detectable_difference(n: int, spread: float) -> float:
    """The smallest true difference a paired t-test over n seeds detects with POWER."""
    if n < 2 or math.isnan(spread):
        return math.nan
    if spread <= SAME:  # the per-seed differences never vary: any true difference shows
        return 0.0
    effect = optimize.brentq(lambda d: paired_power(n, d) - POWER, 1e-6, 1e3)
    return effect * spread


def pairs_needed(
    difference: float, spread: float, limit: int = 10_000, alpha: float = ALPHA
) -> int | None:
    """Seeds a paired t-test at level `alpha` needs to detect `difference` with POWER; None
    past limit."""
    if not spread > SAME:  # no spread: two seeds show any difference
        return 2
    effect = abs(difference) / spread
    low, high = 1, 2  # power grows with n: double past the answer, then bisect
    while paired_power(high, effect, alpha) < POWER:
        if high >= limit:
            return None
        low, high = high, min(2 * high, limit)
    while high - low > 1:
        middle = (low + high) // 2
        below = paired_power(middle, effect, alpha) < POWER
        low, high = (middle, high) if below else (low, middle)
    return high


def power_table(
    runs: pd.DataFrame, factors: list[str], value: str, baselines: dict[str, object],
    detect: float | None, strata: Sequence[str] = (),
) -> pd.DataFrame:  # fmt: skip
    """Per factor: the spread of per-seed differences (pooled over its levels), seeds per
    comparison, the smallest difference those seeds detect with 80 % power, and the seeds
    `detect` would need."""
    rows = []
    for factor in factors:
        others = [k for k in [*factors, *strata] if k != factor]
        diffs, counts = [], []
        for level in levels(runs, factor):
            if str(level) == str(baselines[factor]):
                continue
            per_seed, _ = seed_differences(runs, factor, level, baselines[factor], others, value)
            diffs.append(per_seed - per_seed.mean())  # spread around each level's mean
            counts.append(len(per_seed))
        centred = pd.concat(diffs) if diffs else pd.Series(dtype=float)
        n = min(counts) if counts else 0
        dof = len(centred) - len(diffs)
        spread = math.sqrt((centred**2).sum() / dof) if n >= 2 and dof > 0 else math.nan
        spread = 0.0 if spread <= SAME else spread  # float noise of identical differences
        row = {"factor": factor, "seeds per comparison": n, "sd of per-seed differences": spread,
               f"detectable with {POWER:.0%} power": detectable_difference(n, spread)}  # fmt: skip
        if detect is not None:
            row[f"seeds to detect {detect:g}"] = pairs_needed(detect, spread) if n >= 2 else None
        rows.append(row)
    return pd.DataFrame(rows)
