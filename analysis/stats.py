"""Numbers for a report: the metric per run, swept keys, mean / std / n / 95 % CI per config,
paired comparisons against a baseline with Holm-adjusted p-values, and what the seeds can
detect. Every distribution comes from scipy.stats."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import optimize, stats

from analysis.page import Estimate, is_fraction

REPLICATE = "seed"  # the replicate axis: never a factor of a comparison
SPLITS = ("train", "val", "test")
ALPHA = 0.05  # two-sided level of every test and (1 - ALPHA) of every interval
POWER = 0.8  # for the smallest detectable difference and the seeds a difference needs
COMPARISON_COLUMNS = ["metric", "factor", "level", "baseline", "n", "mean_diff", "ci_low",
                      "ci_high", "p", "p_holm", "verdict", "test"]  # fmt: skip
RAW_COLUMNS = ["factor", "level", "baseline", "n", "mean_diff", "ci_low", "ci_high", "p", "test"]


class ReportError(Exception):
    """A bad request (unknown metric or key, empty window); the message says what is valid."""


def metric_label(metric: str, window: tuple[int, int] | None) -> str:
    return f"{metric}[{window[0]}:{window[1]}]" if window else metric


def metric_values(
    runs: pd.DataFrame, epochs: pd.DataFrame, metric: str, window: tuple[int, int] | None
) -> pd.Series:
    """The metric per run: a summary field, or `<split>_<column>` of metrics.csv.

    Without a window a per-epoch metric is its value at the run's last epoch; with `A:B` it is
    the mean over epochs A..B inclusive, and NaN for a run whose metrics do not reach B.
    """
    if window is None and metric in runs.columns and metric not in ("sweep", "run", "path"):
        return pd.to_numeric(runs[metric], errors="coerce")
    split, _, column = metric.partition("_")
    if split not in SPLITS or column not in epochs.columns or column in ("epoch", "split"):
        numeric = sorted(c for c in runs.select_dtypes("number").columns if "." not in c)
        raise ReportError(
            f"unknown metric {metric!r}: use a summary field ({', '.join(numeric)}) or "
            f"<split>_<column> of metrics.csv, e.g. val_accuracy or train_loss"
        )
    rows = epochs[epochs["split"] == split]
    if window:
        covered = rows.groupby("path")["epoch"].max() >= window[1]
        rows = rows[rows["epoch"].between(*window) & rows["path"].map(covered)]
        if rows.empty:
            raise ReportError(f"no run has {split} rows for all of epochs {window[0]}..{window[1]}")
        per_run = rows.groupby("path")[column].mean()
    else:
        per_run = rows.sort_values("epoch").groupby("path")[column].last()
    return runs["path"].map(per_run)


def swept_keys(
    runs: pd.DataFrame, config_keys: list[str], required: list[str], runtime: list[str]
) -> list[str]:
    """Config keys whose values differ across runs, in config order, without redundant ones.

    The seed and the `runtime` keys (how a run executed, not what it computed) are never
    factors. A key that the keys already chosen fix within every group of two or more runs
    (e.g. `model.activation` once `model.name` is a factor) is not an independent factor and
    is left out; where every group is a single run (an Optuna search) there is no such
    evidence, and every varying key is a factor.
    """
    factors: list[str] = []
    for key in config_keys:
        if key == REPLICATE or key in runtime or runs[key].astype(str).nunique() < 2:
            continue
        if key not in required and factors:
            groups = runs.astype({key: str}).groupby(factors, dropna=False)[key]
            sizes, spread = groups.size(), groups.nunique()
            if (sizes > 1).any() and (spread[sizes > 1] <= 1).all():
                continue
        factors.append(key)
    for key in required:
        if key not in factors:
            factors.append(key)
    return factors


def describe(values: pd.Series) -> dict[str, float]:
    """mean, std (ddof 1; NaN for n = 1, never 0), n, min, max and a t-based 95 % CI."""
    values = values.dropna()
    n = len(values)
    mean = values.mean() if n else math.nan
    std = values.std(ddof=1) if n > 1 else math.nan
    half = stats.t.ppf(1 - ALPHA / 2, n - 1) * std / math.sqrt(n) if n > 1 else math.nan
    return {
        "mean": mean,
        "std": std,
        "n": n,
        "min": values.min() if n else math.nan,
        "max": values.max() if n else math.nan,
        "ci95_low": mean - half,
        "ci95_high": mean + half,
    }


def summarise(runs: pd.DataFrame, factors: list[str], value: str) -> pd.DataFrame:
    """One row per configuration (value of the factors) with `describe` of `value`."""
    if not factors:
        return pd.DataFrame([describe(runs[value])])
    rows = []
    for key, group in runs.groupby(factors, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(factors, key, strict=True)), **describe(group[value])})
    return pd.DataFrame(rows)


def cell_table(
    summary: pd.DataFrame, rows: str, cols: str | None, percent: bool = False
) -> pd.DataFrame:
    """rows x cols table of `mean ± std (n)` cells (one column when `cols` is None)."""
    cells = summary.assign(
        cell=[
            Estimate(m, s, int(n), percent)
            for m, s, n in zip(summary["mean"], summary["std"], summary["n"], strict=True)
        ]
    )
    if cols is None:
        return cells.groupby(rows, dropna=False)["cell"].first().to_frame("mean ± std (n)")
    return cells.pivot_table(index=rows, columns=cols, values="cell", aggfunc="first", dropna=False)


def _single(values: pd.Series) -> object:
    """The one value of a column within a group, or 'a-b' when runs disagree."""
    values = values.dropna()
    if values.empty:
        return "-"
    low, high = values.min(), values.max()
    if low == high:
        return int(low) if pd.api.types.is_numeric_dtype(values) else low
    as_text = (lambda v: f"{v:,.0f}") if pd.api.types.is_numeric_dtype(values) else str
    return f"{as_text(low)}-{as_text(high)}"


def configuration_table(runs: pd.DataFrame, factors: list[str], value: str) -> pd.DataFrame:
    """One row per configuration: its factors, params, epochs, `value` and training seconds."""
    groups = runs.groupby(factors, dropna=False, sort=True) if factors else [((), runs)]
    rows = []
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        summary = describe(group[value])
        seconds = group["train_seconds"] if "train_seconds" in group else pd.Series(dtype=float)
        rows.append(
            {
                **dict(zip(factors, key, strict=True)),
                "params": _single(group["params"]) if "params" in group else "-",
                "epochs": _single(group["epochs_completed"])
                if "epochs_completed" in group
                else "-",
                f"{value} mean ± std (n)": Estimate(
                    summary["mean"], summary["std"], summary["n"], is_fraction(value)
                ),
                "train s (mean)": seconds.mean() if seconds.notna().any() else math.nan,
            }
        )
    return pd.DataFrame(rows)


# --- comparisons against a baseline ----------------------------------------------------------


def _same(column: pd.Series, value: object) -> pd.Series:
    return column.astype(str) == str(value)


def _paired(
    runs: pd.DataFrame, factor: str, level: object, baseline: object, matched_on: list[str],
    value: str,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """The runs at `level`, at `baseline`, and their pairs matched on `matched_on` (columns
    `value` and `value_base`, rows with both values only)."""
    keys = [key for key in matched_on if key in runs]
    a = runs[_same(runs[factor], level)].astype({k: str for k in keys})
    b = runs[_same(runs[factor], baseline)].astype({k: str for k in keys})
    pairs = a.merge(b, on=keys, suffixes=("", "_base"))[[value, f"{value}_base"]].dropna()
    return a, b, pairs


def compare_levels(
    runs: pd.DataFrame, factor: str, level: object, baseline: object, matched_on: list[str],
    value: str, welch: bool = True,
) -> dict[str, object]:  # fmt: skip
    """`value` at `level` minus at `baseline`: a paired t-test over runs that match on every
    key in `matched_on` (the other factors and the seed), else Welch's test (unless `welch` is
    False: when runs differ in keys no factor explains, only pairs are comparable)."""
    a, b, pairs = _paired(runs, factor, level, baseline, matched_on, value)
    row: dict[str, object] = {"factor": factor, "level": level, "baseline": baseline}
    if len(pairs) >= 2:
        differences = pairs[value] - pairs[f"{value}_base"]
        if _constant(differences):
            return {**row, "n": len(pairs), **_certain(differences.iloc[0], paired=True)}
        result = stats.ttest_rel(pairs[value], pairs[f"{value}_base"])
        interval = result.confidence_interval(1 - ALPHA)
        return {**row, "n": len(pairs), "mean_diff": differences.mean(), "ci_low": interval.low,
                "ci_high": interval.high, "p": result.pvalue, "test": "paired t"}  # fmt: skip
    x, y = a[value].dropna(), b[value].dropna()
    if not welch:
        return {**row, "n": len(pairs), "mean_diff": math.nan, "ci_low": math.nan,
                "ci_high": math.nan, "p": math.nan,
                "test": "too few runs that agree on the unexplained keys"}  # fmt: skip
    if len(x) >= 2 and len(y) >= 2:
        n = len(x) + len(y)
        if _constant(x) and _constant(y):
            return {**row, "n": n, **_certain(x.iloc[0] - y.iloc[0], paired=False)}
        result = stats.ttest_ind(x, y, equal_var=False)
        interval = result.confidence_interval(1 - ALPHA)
        return {**row, "n": n, "mean_diff": x.mean() - y.mean(),
                "ci_low": interval.low, "ci_high": interval.high, "p": result.pvalue,
                "test": "Welch (runs could not be paired)"}  # fmt: skip
    return {**row, "n": min(len(x), len(y)), "mean_diff": x.mean() - y.mean(), "ci_low": math.nan,
            "ci_high": math.nan, "p": math.nan, "test": "too few runs"}  # fmt: skip


# Values closer than this are equal: a difference of whole test images is never this small,
# float noise in a subtraction always is.
SAME = 1e-12


def _constant(values: pd.Series) -> bool:
    """Every value equal (to float noise): a t statistic would be 0/0 and scipy's p NaN."""
    return bool(values.max() - values.min() <= SAME)


# The `test` of a comparison without spread, by (paired?, no difference?).
CERTAIN = {
    (True, True): "paired: identical in every pair",
    (True, False): "paired: the same difference in every pair",
    (False, True): "Welch: every run of both groups identical",
    (False, False): "Welch: no spread in either group",
}
CERTAIN_TESTS = tuple(CERTAIN.values())


def _certain(difference: float, paired: bool) -> dict[str, object]:
    """A comparison without spread: every pair (or both groups) differs by the same amount,
    so that amount is the difference, with no uncertainty to test: p is 1 for no difference,
    0 for any other."""
    zero = abs(difference) <= SAME
    difference = 0.0 if zero else float(difference)
    return {"mean_diff": difference, "ci_low": difference, "ci_high": difference,
            "p": 1.0 if zero else 0.0, "test": CERTAIN[paired, zero]}  # fmt: skip


def holm(p_values: pd.Series) -> pd.Series:
    """Holm's step-down adjustment of a family of p-values (NaN stays NaN)."""
    valid = p_values.dropna().sort_values()
    m = len(valid)
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * valid.to_numpy()))
    return pd.Series(adjusted, index=valid.index).reindex(p_values.index)


def verdict(mean_diff: float, p_holm: float) -> str:
    if pd.isna(p_holm):
        return "too few runs"
    if p_holm >= ALPHA:
        return "no detectable difference"
    return "higher" if mean_diff > 0 else "lower"


def unpaired_allowed(strata: Sequence[str]) -> bool:
    """Whether Welch's test may stand in for pairs: not when runs differ in keys no factor
    explains (only pairs that agree on them are comparable); pooled sweeps alone are fine."""
    return set(strata) <= {"sweep"}


def compare_factors(
    runs: pd.DataFrame, factors: list[str], value: str, baselines: dict[str, object],
    strata: Sequence[str] = (),
) -> pd.DataFrame:  # fmt: skip
    """Each level of each factor against that factor's baseline level, matched on the other
    factors, the seed and the `strata` (keys no factor explains, the sweep of pooled sweeps;
    `finish` then adds Holm's adjustment and the verdicts)."""
    rows = []
    for factor in factors:
        others = [f for f in factors if f != factor] + [REPLICATE, *strata]
        for level in levels(runs, factor):
            if str(level) != str(baselines[factor]):
                rows.append(compare_levels(runs, factor, level, baselines[factor], others, value,
                                           welch=unpaired_allowed(strata)))  # fmt: skip
    return pd.DataFrame(rows, columns=RAW_COLUMNS).assign(metric=value)


def finish(table: pd.DataFrame) -> pd.DataFrame:
    """Add `p_holm` (Holm over the whole table: one family) and `verdict`."""
    table = table.reset_index(drop=True)
    table["p_holm"] = holm(table["p"].astype(float)) if len(table) else []
    table["verdict"] = [
        verdict(d, p) for d, p in zip(table["mean_diff"], table["p_holm"], strict=True)
    ]
    return table[COMPARISON_COLUMNS]


def levels(runs: pd.DataFrame, factor: str) -> list[object]:
    """The factor's values in their natural (numeric, then text) order."""
    return sorted(runs[factor].dropna().unique(), key=natural_order)


def natural_order(value: object) -> tuple[int, float, str]:
    """Numbers by value, then text: `1e-4` before `1e-3`, both before `lenet5`."""
    try:
        return (0, float(value), "")  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def paired_power(n: int, effect: float) -> float:
    """Power of a two-sided paired t-test at level ALPHA with n pairs and effect d / sd."""
    df = n - 1
    critical = stats.t.ppf(1 - ALPHA / 2, df)
    shift = effect * math.sqrt(n)
    power = float(stats.nct.sf(critical, df, shift) + stats.nct.cdf(-critical, df, shift))
    return 1.0 if math.isnan(power) else power  # scipy's nct gives NaN far out in the tail


def detectable_difference(n: int, spread: float) -> float:
    """The smallest true difference a paired t-test with n pairs detects with POWER."""
    if n < 2 or math.isnan(spread):
        return math.nan
    if spread <= SAME:  # the paired differences never vary: any true difference shows
        return 0.0
    effect = optimize.brentq(lambda d: paired_power(n, d) - POWER, 1e-6, 1e3)
    return effect * spread


def pairs_needed(difference: float, spread: float, limit: int = 10_000) -> int | None:
    """Pairs (seeds) a paired t-test needs to detect `difference` with POWER; None past limit."""
    if not spread > SAME:  # no spread: two pairs show any difference
        return 2
    effect = abs(difference) / spread
    return next((n for n in range(2, limit) if paired_power(n, effect) >= POWER), None)


def power_table(
    runs: pd.DataFrame, factors: list[str], value: str, baselines: dict[str, object],
    detect: float | None, strata: Sequence[str] = (),
) -> pd.DataFrame:  # fmt: skip
    """Per factor: the spread of paired differences, pairs per comparison, the smallest
    difference those pairs detect with 80 % power, and the pairs `detect` would need."""
    rows = []
    for factor in factors:
        others = [k for k in [*factors, REPLICATE, *strata] if k != factor]
        diffs, counts = [], []
        for level in levels(runs, factor):
            if str(level) == str(baselines[factor]):
                continue
            _, _, pairs = _paired(runs, factor, level, baselines[factor], others, value)
            difference = pairs[value] - pairs[f"{value}_base"]
            diffs.append(difference - difference.mean())  # spread around each level's mean
            counts.append(len(pairs))
        centred = pd.concat(diffs) if diffs else pd.Series(dtype=float)
        n = min(counts) if counts else 0
        dof = len(centred) - len(diffs)
        spread = math.sqrt((centred**2).sum() / dof) if n >= 2 and dof > 0 else math.nan
        spread = 0.0 if spread <= SAME else spread  # float noise of identical differences
        row = {"factor": factor, "pairs per comparison": n, "sd of paired differences": spread,
               f"detectable with {POWER:.0%} power": detectable_difference(n, spread)}  # fmt: skip
        if detect is not None:
            row[f"pairs to detect {detect:g}"] = pairs_needed(detect, spread) if n >= 2 else None
        rows.append(row)
    return pd.DataFrame(rows)
