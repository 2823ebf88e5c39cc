"""Numbers for a report: the metric per run, swept keys, mean / std / n / 95 % CI per config.
The comparisons against a baseline are analysis/comparisons.py's. Every distribution comes
from scipy.stats."""

from __future__ import annotations

import math

import pandas as pd
from scipy import stats

from analysis.comparisons import ALPHA, REPLICATE

SPLITS = ("train", "val", "test")


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
