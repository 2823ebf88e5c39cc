"""The runs of one or more sweep folders, read and compared once: `Sweeps`, what every
section of a report works from, and what a notebook opens beside pandas and seaborn.

    from analysis import load_sweeps
    sweeps = load_sweeps("multirun/wd_vs_noise", detect=0.002)
    sweeps.done          # the completed runs: one row each, config keys as columns, the metric
    sweeps.factors       # the swept keys; sweeps.baselines: each one's baseline level
    sweeps.comparisons   # comparisons.csv as the report computes it (the seed as the unit)

Reads files only: no torch, no training code (the run folder is the only tie).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from analysis import provenance_report
from analysis.collect import config_columns, load_epochs, load_runs
from analysis.comparisons import (
    RAW_COLUMNS,
    compare_factors,
    compare_levels,
    finish,
    levels,
    unpaired_allowed,
)
from analysis.factors import Factors, level_changes, swept_factors
from analysis.stats import ReportError, metric_label, metric_values
from sweeplab.errors import closest_key  # the same suggestion as run.py's
from sweeplab.run_format import DECISIONS, is_adaptive, is_search, read_multirun, sweeper_of

MAX_GRID_LEVELS = 12  # a key with more values (an Optuna search) gets no rows x cols table
CONFIGURATION = "configuration"  # the `factor` of a whole configuration's comparison


@dataclass
class Request:
    sweeps: list[Path]
    metric: str = "test_accuracy"
    window: tuple[int, int] | None = None
    rows: str | None = None
    cols: str | None = None
    out: Path | None = None
    baselines: dict[str, str] = field(default_factory=dict)  # key -> value (--baseline)
    detect: float | None = None  # a difference to plan seeds for (--detect)
    code_version: str | None = None  # only the runs of this code version (--code-version)


def parse_window(text: str | None) -> tuple[int, int] | None:
    """'20:50' -> (20, 50), inclusive."""
    if text is None:
        return None
    try:
        first, last = (int(part) for part in text.split(":"))
    except ValueError:
        raise ReportError(f"--epochs {text!r}: use FIRST:LAST, e.g. --epochs 20:50") from None
    if not 1 <= first <= last:
        raise ReportError(f"--epochs {text!r}: need 1 <= FIRST <= LAST")
    return first, last


def parse_baselines(texts: list[str]) -> dict[str, str]:
    """['key=value', ...] -> {key: value}."""
    pairs = {}
    for text in texts:
        key, sep, value = text.partition("=")
        if not sep or not key or not value:
            raise ReportError(f"--baseline {text!r}: use KEY=VALUE, e.g. --baseline seed=0")
        pairs[key] = value
    return pairs


def resolve_key(runs: pd.DataFrame, key: str | None) -> str | None:
    """A config key, or a group name (`model`: the option chosen; `model.name` in folders
    without Hydra's record of the choices)."""
    if key is None or key in runs.columns:
        return key
    if f"{key}.name" in runs.columns:
        return f"{key}.name"
    meant = closest_key(key, config_columns(runs))
    if meant is not None:
        raise ReportError(f"unknown key {key!r}: did you mean {meant}?")
    keys = ", ".join(config_columns(runs))
    raise ReportError(f"unknown key {key!r}; config keys are: {keys}")


def _sweep_orders(multiruns: dict[Path, dict[str, Any] | None]) -> dict[str, list[str]]:
    """Each swept override's values in the order the sweep gave them (its first is the
    default baseline), from the sweeps' multirun.yaml."""
    orders: dict[str, list[str]] = {}
    for multirun in multiruns.values():
        if multirun is None:
            continue
        hydra = multirun.get("hydra") or {}
        texts = [f"{k}={v}" for k, v in (sweeper_of(multirun).get("params") or {}).items()]
        for text in [*texts, *((hydra.get("overrides") or {}).get("task") or [])]:
            key, _, values = str(text).partition("=")
            if "," in values:
                orders.setdefault(key.lstrip("+~"), [v.strip() for v in values.split(",")])
    return orders


def choose_baselines(
    runs: pd.DataFrame, factors: list[str], request: Request,
    multiruns: dict[Path, dict[str, Any] | None] | None = None,
) -> dict[str, object]:  # fmt: skip
    """Per factor: --baseline's value, else the first value the sweep gave, else the lowest."""
    if multiruns is None:
        multiruns = {sweep: read_multirun(sweep) for sweep in request.sweeps}
    orders = _sweep_orders(multiruns)
    wanted = {resolve_key(runs, key): value for key, value in request.baselines.items()}
    chosen: dict[str, object] = {}
    for factor in factors:
        present = levels(runs, factor)
        if not present:
            continue
        if factor in wanted:
            match = [v for v in present if _equal(v, wanted[factor])]
            if not match:
                raise ReportError(
                    f"--baseline {factor}={wanted[factor]}: no completed run has that value; "
                    f"they have {', '.join(str(v) for v in present)}"
                )
            chosen[factor] = match[0]
            continue
        order = orders.get(factor) or orders.get(factor.removesuffix(".name"))
        if order is None:  # a group whose options are the factor's values (lenet_variant)
            names = {str(v) for v in present}
            order = next((o for o in orders.values() if names <= set(o)), None)
        first = [v for text in order or [] for v in present if _equal(v, text)]
        chosen[factor] = (first or present)[0]
    unknown = set(wanted) - set(factors)
    if unknown:
        raise ReportError(
            f"--baseline {sorted(unknown)[0]}: not a swept key ({', '.join(factors)})"
        )
    return chosen


def _equal(value: object, text: object) -> bool:
    try:
        return math.isclose(float(value), float(text))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        if str(value) in ("True", "False"):  # a boolean key, written `true` on the command line
            return str(value).lower() == str(text).lower()
        return str(value) == str(text)


def is_grid(runs: pd.DataFrame, factors: list[str]) -> bool:
    """Whether the configurations fill (most of) a grid of the factors' values, as a sweep over
    lists does and a search (Optuna) does not: only a grid gets rows x cols tables."""
    if not factors or any(runs[f].nunique() > MAX_GRID_LEVELS for f in factors):
        return False
    cells = math.prod(runs[f].nunique() for f in factors)
    return len(runs.drop_duplicates(factors)) * 2 >= cells


@dataclass
class Sweeps:
    """One or more sweep folders, read and compared once (`load_sweeps`)."""

    request: Request
    runs: pd.DataFrame  # every run found, one row each: config keys, summary fields, the metric
    epochs: pd.DataFrame  # every metrics.csv row, with the run's `path`
    label: str  # the metric compared: `test_accuracy`, or `val_accuracy[3:5]` over a window
    done: pd.DataFrame  # the completed runs whose files agree: what the statistics use
    swept: Factors  # the factors and what they imply (aliases, leaves they change)
    strata: list[str]  # keys runs are paired within: leaves no factor explains, pooled sweeps
    baselines: dict[str, object]  # each factor's baseline level
    rows_key: str | None
    cols_key: str | None
    gridded: bool  # the configurations fill a grid of the factors' values (not a search)
    comparisons: pd.DataFrame  # each level and configuration against its baseline
    multiruns: dict[Path, dict[str, Any] | None] = field(default_factory=dict)
    searched: list[Path] = field(default_factory=list)  # the sweeps that are searches
    adaptive: pd.DataFrame | None = None  # an adaptive-seeds sweep's decisions.csv

    @property
    def factors(self) -> list[str]:
        return self.swept.keys

    @property
    def out(self) -> Path:
        """Where the report goes: --out, else `<first sweep>/report`."""
        return self.request.out or self.request.sweeps[0] / "report"


def load_sweeps(
    *sweeps: str | Path, metric: str = "test_accuracy", epochs: str | None = None,
    baselines: dict[str, str] | None = None, detect: float | None = None,
    rows: str | None = None, cols: str | None = None, code_version: str | None = None,
) -> Sweeps:  # fmt: skip
    """The report's view of `sweeps` (the same options as `analysis/report.py`)."""
    request = Request(
        [Path(s) for s in sweeps], metric, parse_window(epochs), rows, cols, None,
        dict(baselines or {}), detect, code_version,
    )  # fmt: skip
    return build(request)


def build(request: Request) -> Sweeps:
    """Collect the runs, find the factors and baselines, and compare."""
    runs = provenance_report.restrict(load_runs(request.sweeps), request.code_version)
    epochs = load_epochs(runs)
    label = metric_label(request.metric, request.window)
    per_epoch = request.window is not None or request.metric not in runs.columns
    values = metric_values(runs, epochs, request.metric, request.window)
    runs[label] = values.where(runs["metrics_ok" if per_epoch else "summary_ok"])
    rows_key, cols_key = resolve_key(runs, request.rows), resolve_key(runs, request.cols)
    required = [key for key in (rows_key, cols_key) if key]
    swept = swept_factors(runs, required)
    rows_key, cols_key = (swept.aliases.get(k, k) if k else k for k in (rows_key, cols_key))
    # Runs are paired only with runs that agree on what no factor explains, and, when several
    # sweeps are pooled, only within their own sweep.
    strata = swept.unexplained + (["sweep"] if len(request.sweeps) > 1 else [])
    done = runs[(runs["status"] == "completed") & runs[label].notna()]
    # A key can be swept yet have one value left among the usable runs: nothing to compare.
    factors = [f for f in swept.keys if f in required or done[f].astype(str).nunique() > 1]
    rows_key = rows_key if rows_key in factors else (factors[0] if factors else None)
    cols_key = (
        cols_key if cols_key in factors else next((f for f in factors if f != rows_key), None)
    )
    multiruns = {sweep: read_multirun(sweep) for sweep in request.sweeps}
    baselines = choose_baselines(done, factors, request, multiruns)
    swept.keys, swept.changes = factors, level_changes(done, swept, baselines)
    gridded = is_grid(done, factors)
    detect = request.detect
    raw = [compare_factors(done, factors, label, baselines, strata, detect)]
    if gridded and len(factors) > 1:
        raw.append(configuration_comparisons(done, factors, label, baselines, strata, detect))
    compared = finish(pd.concat(raw, ignore_index=True), detect)  # one family for Holm
    adaptive = adaptive_decisions(request.sweeps, multiruns)
    if adaptive is not None and label == ADAPTIVE_METRIC:  # the sweeper's verdicts stand
        compared = sequential_comparisons(compared, adaptive)
    compared = mark_mixed(compared, done, factors)
    searched = [sweep for sweep, made in multiruns.items() if is_search(sweeper_of(made))]
    return Sweeps(request, runs, epochs, label, done, swept, strata, baselines, rows_key,
                  cols_key, gridded, compared, multiruns, searched, adaptive)  # fmt: skip


ADAPTIVE_METRIC = "test_accuracy"  # what run.py returns to the adaptive-seeds sweeper


def adaptive_decisions(
    sweeps: list[Path], multiruns: dict[Path, dict[str, Any] | None]
) -> pd.DataFrame | None:
    """An adaptive-seeds sweep's decisions.csv (its sequential verdicts), else None."""
    if len(sweeps) != 1 or not is_adaptive(sweeper_of(multiruns.get(sweeps[0]))):
        return None
    try:
        return pd.read_csv(sweeps[0] / DECISIONS)
    except (OSError, ValueError):
        return None


def sequential_comparisons(compared: pd.DataFrame, adaptive: pd.DataFrame) -> pd.DataFrame:
    """The per-key rows as the sweeper decided them: the seeds were added while looking, so
    only its sequential procedure's verdicts, intervals and p-values hold. A configuration's
    comparison has no such procedure behind it, and is left out."""
    rows = []
    for row in compared[compared["factor"] != CONFIGURATION].to_dict("records"):
        same = adaptive["level"].map(lambda level, at=row["level"]: _equal(at, level))
        match = adaptive[(adaptive["factor"] == row["factor"]) & same]
        if len(match):
            decided = match.iloc[0]
            for column in ("n", "mean_diff", "ci_low", "ci_high", "p", "p_holm", "verdict",
                           "p_equiv", "p_equiv_holm"):  # fmt: skip
                row[column] = decided[column]
            row["test"] = f"sequential: t over seeds at alpha {decided['look_alpha']:.3g} a look"
            row["seeds_to_decide"] = float("nan")
        rows.append(row)
    return pd.DataFrame(rows, columns=compared.columns)


def configuration_names(runs: pd.DataFrame, factors: list[str]) -> pd.Series:
    """Each run's configuration as its swept keys' values, in factor order: `0.01, 0.1`."""
    return runs[factors].astype(str).agg(", ".join, axis=1)


def configuration_comparisons(
    done: pd.DataFrame, factors: list[str], label: str, baselines: dict[str, object],
    strata: list[str], detect: float | None,
) -> pd.DataFrame:  # fmt: skip
    """Each configuration (a value of every swept key) against the baseline configuration
    (every key at its baseline), paired on the seed. Unlike the per-key comparisons, which
    pool over the other keys, these stay right when keys interact (a switch that helps only
    together with another); the heatmap marks the ones in its slice."""
    configs = done.assign(_configuration=configuration_names(done, factors))
    base = ", ".join(str(baselines[key]) for key in factors)
    welch = unpaired_allowed(strata)
    rows = [
        compare_levels(configs, "_configuration", name, base, strata, label, welch, detect)
        for name in configs["_configuration"].unique()
        if name != base
    ]
    table = pd.DataFrame(rows, columns=RAW_COLUMNS).assign(metric=label)
    return table.assign(factor=CONFIGURATION)


def mark_mixed(compared: pd.DataFrame, done: pd.DataFrame, factors: list[str]) -> pd.DataFrame:
    """`mixed`: what the runs of each comparison mix (code versions, data fingerprints), and
    such a comparison's verdict says it is not clean."""
    configs = configuration_names(done, factors) if factors else None
    marks = []
    for factor, level, base in zip(
        compared["factor"], compared["level"], compared["baseline"], strict=True
    ):
        column = configs if factor == CONFIGURATION else done[factor].astype(str)
        marks.append(provenance_report.mixed(done[column.isin([str(level), str(base)])]))
    compared = compared.assign(mixed=marks)
    not_clean = compared["mixed"] != ""
    compared.loc[not_clean, "verdict"] = [
        f"{verdict} (not clean: mixed {what})"
        for verdict, what in zip(
            compared.loc[not_clean, "verdict"], compared.loc[not_clean, "mixed"], strict=True
        )
    ]
    return compared
