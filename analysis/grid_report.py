"""The sections of a report that compare what a sweep swept: each level against its baseline,
each configuration against the baseline configuration, what the seeds can detect, rows x cols
tables and the heatmap, and the best configuration (chosen on validation)."""

from __future__ import annotations

import math
from itertools import product
from pathlib import Path
from typing import Any

import pandas as pd

from analysis import plots
from analysis.comparisons import (
    ALPHA,
    CERTAIN_TESTS,
    PAIRED,
    POWER,
    REPLICATE,
    levels,
    power_table,
)
from analysis.page import (
    Difference,
    Estimate,
    Link,
    Page,
    cell_text,
    folder_link,
    is_fraction,
    number,
)
from analysis.stats import describe, metric_label, metric_values, summarise
from analysis.sweeps import CONFIGURATION, Sweeps, configuration_names
from sweeplab.tracker_links import mlflow_run_urls

MAX_LINKED_RUNS = 12  # a configuration with more runs links none of them from its row


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


def add_answer_section(page: Page, ctx: Sweeps) -> None:
    """The report's answer in a few lines, before the tables that back it: per level of each
    swept key, the verdict, interval and n of its row in the comparisons table."""
    if not ctx.factors or ctx.done.empty or ctx.searched:
        return
    rows = ctx.comparisons[ctx.comparisons["factor"] != CONFIGURATION]
    lines = [answer_line(row, ctx.label) for row in rows.itertuples()]
    if lines:
        page.heading("In short")
        page.text(*lines)


def answer_line(row: Any, label: str) -> str:
    """One comparison in words: its verdict, difference, interval, seeds and adjusted p."""
    difference = Difference(row.mean_diff, row.ci_low, row.ci_high, is_fraction(label))
    against = f"{label} against {_value(row.baseline)}"
    head = f"- `{row.factor}={_value(row.level)}`: **{row.verdict}**, {against}"
    if row.verdict.startswith("too few seeds"):
        one = f"; its one seed differs by {difference}" if row.n == 1 else ""
        return f"{head}{one}; a verdict needs at least two seeds (e.g. `seed=0,1,2`)"
    p_column = "p_equiv_holm" if row.verdict.startswith("equivalent (within") else "p_holm"
    p = f"{p_column} {number(getattr(row, p_column), p_column)}"
    line = f"{head}, {difference} ({row.n} seeds, {p})"
    if row.verdict == "undecided" and not pd.isna(row.seeds_to_decide):
        line += f"; about {int(row.seeds_to_decide)} seeds would decide it"
    return line


def _value(level: object) -> str:
    """A level as the command line writes it (`1e-4`, `0`, `True`), whether stored as text or
    not."""
    if isinstance(level, bool) or str(level) in ("True", "False"):
        return str(level)
    try:
        return cell_text(float(level))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(level)


HIDDEN = ["mean_diff", "ci_low", "ci_high", "metric", "sd_diff", "left_out"]  # not on the page


def shown_comparisons(table: pd.DataFrame, label: str) -> pd.DataFrame:
    """A comparisons table for people: the difference and its interval in one column (points
    for an accuracy), p-values to two digits, equivalence and seeds-to-decide columns only
    where they hold something."""
    percent = is_fraction(label)
    unit = " (pp)" if percent else ""
    difference = [
        Difference(d, low, high, percent)
        for d, low, high in zip(table["mean_diff"], table["ci_low"], table["ci_high"], strict=True)
    ]
    before = table.columns[: table.columns.get_loc("mean_diff")]
    shown = table.drop(columns=HIDDEN, errors="ignore")
    empty = [c for c in ("p_equiv", "p_equiv_holm", "seeds_to_decide") if c in shown]
    shown = shown.drop(columns=[c for c in empty if shown[c].isna().all()])
    at = len([c for c in before if c in shown])
    shown.insert(at, f"difference [{1 - ALPHA:.0%} CI]{unit}", difference)
    if "test" in shown and shown["test"].nunique() == 1 and shown["test"].iloc[0] == PAIRED:
        shown = shown.drop(columns="test")  # every row the section's own test: said above it
    return shown.rename(columns={"n": "seeds", "seeds_to_decide": "seeds to decide"})


POINTS = ("sd of per-seed differences", f"detectable with {POWER:.0%} power")


def _shown_power(power: pd.DataFrame, label: str) -> pd.DataFrame:
    """The power table in points for an accuracy."""
    if not is_fraction(label):
        return power
    return power.assign(**{c: power[c] * 100 for c in POINTS if c in power}).rename(
        columns={c: f"{c} (pp)" for c in POINTS}
    )


def add_comparisons_section(page: Page, ctx: Sweeps) -> None:
    """The per-key comparisons, what the seeds can detect, and the configurations."""
    if not ctx.factors or ctx.done.empty or ctx.searched:
        return
    done, factors, label, baselines = ctx.done, ctx.factors, ctx.label, ctx.baselines
    compared, detect, strata = ctx.comparisons, ctx.request.detect, ctx.strata
    page.heading(f"Comparisons: {label} against a baseline")
    base = ", ".join(f"{k}={v}" for k, v in baselines.items())
    points = " (in percentage points)" if is_fraction(label) else ""
    equivalence = (
        f" `equivalent (within ±{detect:g})` needs the two one-sided tests against ±{detect:g} "
        f"(`--detect`) to give p_equiv_holm < {ALPHA}; they share the Holm family."
        if detect
        else " With `--detect D` (the smallest difference that matters) a comparison can also "
        "be `equivalent (within ±D)`."
    )
    page.text(
        f"Each level of each swept key against its baseline ({base}; choose with "
        "`--baseline KEY=VALUE`), with the **seed as the unit**: on each seed, the difference "
        "averaged over the other swept keys' values that both levels have there; then the mean "
        f"of those per-seed differences{points}, its {1 - ALPHA:.0%} t interval, the paired "
        f"t-test's p over seeds, and p_holm, Holm's adjustment over {_family(len(compared))} "
        f"of this report. `seeds` counts seeds: runs that share a seed share its "
        f"data order and initialisation, so they are not independent. `higher` or `lower` "
        f"needs p_holm < {ALPHA}.{equivalence} Otherwise `undecided` (with the seeds that would "
        "decide it at this spread), or `too few seeds (n)` where fewer than two seeds have both "
        "levels."
    )
    shown = compared[compared["factor"] != CONFIGURATION]
    if not shown["mixed"].astype(bool).any():  # every comparison clean: no column of blanks
        shown = shown.drop(columns="mixed")
    page.table(shown_comparisons(shown, label))
    welch = shown[shown["test"].str.startswith("Welch")]
    if len(welch):
        page.text(
            f"{len(welch)} comparison(s) have no seed with both levels and compare the "
            "per-seed means with Welch's unequal-variance t-test instead."
        )
    _left_out(page, compared)
    certain = compared[compared["test"].isin(CERTAIN_TESTS)]
    if len(certain):
        identical = certain["mean_diff"].eq(0).sum()
        page.text(
            f"{len(certain)} comparison(s) have no spread: {identical} gave identical results "
            f"on every seed, {len(certain) - identical} the same non-zero difference on every "
            "seed (or, unpaired, no spread in either level). There the difference is exact: "
            "its interval is that one value, and p is 1 when it is 0, else 0."
        )
    power = power_table(done, factors, label, baselines, detect, strata)
    page.text(
        f"What these seeds can detect: per key, the spread of its per-seed differences, the "
        f"smallest true difference a paired t-test over these seeds finds with {POWER:.0%} "
        "power at that spread"
        + (f", and the seeds a difference of {detect:g} needs" if detect else "")
        + "."
    )
    page.table(_shown_power(power, label))
    configurations = compared[compared["factor"] == CONFIGURATION]
    if len(configurations):
        page.heading(f"Each configuration against the baseline configuration: {label}")
        page.text(
            "Every configuration (a value of each swept key) against the one with every key at "
            "its baseline, paired on the seed, in the same Holm family as above; best first. "
            "Where keys interact (one helps only with another), read these rather than the "
            "per-key comparisons, which average over the other keys."
        )
        table = _by_configuration(done, factors, configurations)
        page.table(shown_comparisons(table, label))


def _family(size: int) -> str:
    return "its one comparison" if size == 1 else f"all {size} comparisons"


def _left_out(page, compared: pd.DataFrame) -> None:
    """Name the runs a comparison could not use: their level has no partner on their seed."""
    rows = compared[compared["left_out"].fillna("").astype(str) != ""]
    if rows.empty:
        return
    page.text(
        "Left out of a comparison (the other level has no run with the same other keys on "
        "that seed):",
        *[f"- `{row.factor}={_value(row.level)}`: {row.left_out}" for row in rows.itertuples()],
    )


def _by_configuration(done, factors, configurations) -> pd.DataFrame:
    """The configuration comparisons with one column per swept key, best difference first."""
    named = done.assign(_configuration=configuration_names(done, factors))
    values = named.drop_duplicates("_configuration").set_index("_configuration")[factors]
    table = configurations.join(values, on="level").sort_values("mean_diff", ascending=False)
    columns = ["n", "mean_diff", "ci_low", "ci_high", "p", "p_holm", "verdict", "test",
               "p_equiv", "p_equiv_holm", "seeds_to_decide"]  # fmt: skip
    return table[[*factors, *columns]]


def add_grids_section(page: Page, ctx: Sweeps) -> None:
    """rows x cols tables whose cells hold runs that differ only in seed: one per value of
    any other swept key; the heatmap for the baseline slice; marginal tables, pooled. Without
    a swept key: the metric over all runs."""
    done, factors, label, out = ctx.done, ctx.factors, ctx.label, ctx.out
    if done.empty:
        return
    if not factors:
        summary = summarise(done, [], label).iloc[0]
        page.heading(label)
        mean, std, n = summary["mean"], summary["std"], int(summary["n"])
        page.text(str(Estimate(mean, std, n, is_fraction(label))))
        return
    if not ctx.gridded:
        return
    rows_key, cols_key, baselines = ctx.rows_key, ctx.cols_key, ctx.baselines
    compared = ctx.comparisons
    assert rows_key is not None
    others = [f for f in factors if f not in (rows_key, cols_key)]
    percent = is_fraction(label)
    page.heading(f"{label}: {rows_key} x {cols_key or '-'}")
    slices = list(product(*(levels(done, key) for key in others))) or [()]
    for values in slices:
        data = done
        for key, value in zip(others, values, strict=True):
            data = data[data[key].astype(str) == str(value)]
        if data.empty:
            continue
        where = ", ".join(f"{k}={v}" for k, v in zip(others, values, strict=True))
        summary = summarise(data, [k for k in (rows_key, cols_key) if k], label)
        grid = cell_table(summary, rows_key, cols_key, percent)
        grid.index.name = f"{rows_key} \\ {cols_key}" if cols_key else rows_key
        caption = "mean ± std (n seeds); a cell's runs differ only in seed"
        page.table(grid, f"{caption}{f'; with {where}' if where else ''}", index=True)
    for factor in factors if len(factors) > 1 else []:  # marginal tables, pooled over the rest
        pooled = ", ".join(f for f in factors if f != factor)
        marginal = cell_table(summarise(done, [factor], label), factor, None, percent)
        marginal.columns = ["mean ± std (n runs)"]
        page.table(
            marginal,
            f"{label} by {factor}, pooled over {pooled} and seeds (n counts runs)",
            index=True,
        )
    plots.metric_by_factor(done, factors, label, cols_key, out / "metric_by_key.png")
    base_slice = done
    for key in others:
        base_slice = base_slice[base_slice[key].astype(str) == str(baselines[key])]
    if base_slice.empty:
        return
    table = summarise(base_slice, [k for k in (rows_key, cols_key) if k], label)
    grid = (
        table.pivot_table(index=rows_key, columns=cols_key, values="mean", dropna=False)
        if cols_key
        else table.set_index(rows_key)[["mean"]]
    )
    grid.to_csv(out / "heatmap.csv")  # the heatmap's numbers: mean per cell
    differs: set[str] = set()  # "row, col" of the cells whose verdict is higher or lower
    if cols_key:
        named = base_slice.assign(_configuration=configuration_names(base_slice, factors))
        cells = named[rows_key].astype(str) + ", " + named[cols_key].astype(str)
        cell_of = dict(zip(named["_configuration"], cells, strict=True))
        marks = compared[compared["factor"] == CONFIGURATION]
        differs = {cell_of[name] for name, v in zip(marks["level"], marks["verdict"], strict=True)
                   if name in cell_of and v in ("higher", "lower")}  # fmt: skip
    plots.heatmap(table, rows_key, cols_key, label, out / "heatmap.png", differs, baselines)


def mlflow_links(path: str | Path) -> list[Link]:
    """Links to the MLflow runs that mirror a run folder (a tracking server's only)."""
    return [Link("MLflow", url) for url in mlflow_run_urls(Path(path))]


def run_links(runs: pd.DataFrame, out: Path) -> list[Link]:
    """Links to the runs' folders (relative to the report folder), named by seed where the
    runs have one, each followed by its MLflow run where a tracking server holds one."""
    ordered = runs.sort_values(REPLICATE) if REPLICATE in runs else runs
    links = []
    for run in ordered.itertuples():
        seed = getattr(run, REPLICATE, None)
        text = f"seed {seed}" if seed is not None and not pd.isna(seed) else str(run.run)
        links += [folder_link(run.path, out, text), *mlflow_links(run.path)]
    return links


def runs_column(done: pd.DataFrame, factors: list[str], out: Path) -> list[Any]:
    """Per configuration (in `configuration_table`'s order), links to its run folders."""
    groups = done.groupby(factors, dropna=False, sort=True) if factors else [((), done)]
    return [
        run_links(group, out) if len(group) <= MAX_LINKED_RUNS else f"{len(group)} runs"
        for _, group in groups
    ]


def add_best_section(page: Page, ctx: Sweeps) -> None:
    """The configuration with the best mean val accuracy, its test numbers and its runs."""
    done, epochs, factors, label, window, out = (
        ctx.done, ctx.epochs, ctx.factors, ctx.label, ctx.request.window, ctx.out
    )  # fmt: skip
    if done.empty:
        return
    select = "val_accuracy" if window else "best_val_accuracy"
    chosen = done.assign(_select=metric_values(done, epochs, select, window))
    groups = chosen.groupby(factors, dropna=False) if factors else [((), chosen)]
    scored = [(group["_select"].mean(), key, group) for key, group in groups]
    score, key, group = max(scored, key=lambda item: item[0])
    key = key if isinstance(key, tuple) else (key,)
    where = ", ".join(f"{f}={cell_text(v)}" for f, v in zip(factors, key, strict=True))
    test, value = group["test_accuracy"].astype(float), group[label].dropna()
    chosen_on = metric_label(select, window)
    links = ", ".join(link.markdown() for link in run_links(group, out))
    page.heading("Best configuration (chosen on validation, never test)")
    page.text(
        f"- {where or 'all runs'}: mean {chosen_on} {number(score, chosen_on)}",
        f"- its test_accuracy: {Estimate(test.mean(), test.std(ddof=1), len(test), True)}",
        *(
            [
                f"- its {label}: "
                f"{Estimate(value.mean(), value.std(ddof=1), len(value), is_fraction(label))}"
            ]
            if label != "test_accuracy"
            else []
        ),
        f"- its runs: {links}",
    )
