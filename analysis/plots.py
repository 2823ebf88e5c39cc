"""Seaborn figures of a report: heatmap over two keys, learning curves, metric per key."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure  # not pyplot: no global state, no display needed
from matplotlib.ticker import MaxNLocator


def heatmap(
    summary: pd.DataFrame,
    rows: str,
    cols: str | None,
    label: str,
    out: Path,
    differs: set[str] = frozenset(),  # type: ignore[assignment]
    baselines: dict[str, object] | None = None,
) -> Figure:
    """Mean of the metric over rows x cols, each cell annotated with mean, ± std and n; a `*`
    marks a cell that differs from the baseline cell (Holm-adjusted), `(base)` that cell."""
    cols_key = cols or "_metric"  # one column: named by the metric, not "all"
    data = summary.assign(_metric=label) if cols is None else summary
    means = data.pivot_table(index=rows, columns=cols_key, values="mean", dropna=False)
    stds = data.pivot_table(index=rows, columns=cols_key, values="std", dropna=False)
    counts = data.pivot_table(index=rows, columns=cols_key, values="n", dropna=False)
    stds, counts = stds.reindex_like(means), counts.reindex_like(means)
    base = f"{(baselines or {}).get(rows)}, {(baselines or {}).get(cols)}"
    notes = means.copy().astype(object)
    for r in means.index:
        for c in means.columns:
            mean, std, n = means.at[r, c], stds.at[r, c], counts.at[r, c]
            mark = " *" if f"{r}, {c}" in differs else (" (base)" if f"{r}, {c}" == base else "")
            if pd.isna(mean):
                notes.at[r, c] = ""
            elif pd.isna(std):
                notes.at[r, c] = f"{mean:.4f}{mark}\nn={n:.0f}"
            else:
                notes.at[r, c] = f"{mean:.4f}{mark}\n±{std:.4f}\nn={n:.0f}"
    width = 2 + 1.6 * len(means.columns)
    fig = Figure(figsize=(max(width, 6), 1.5 + 0.9 * len(means.index)))  # room for the bar label
    ax = fig.subplots()
    sns.heatmap(means, annot=notes.values, fmt="", cmap="viridis", ax=ax, cbar_kws={"label": label})
    title = f"{label}: mean ± std over seeds"
    ax.set_title(title + ("\n* differs from (base), Holm-adjusted p < 0.05" if cols else ""))
    ax.set_ylabel(rows)
    ax.set_xlabel(cols or "")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    return fig


def learning_curves(curves: pd.DataFrame, y: str, hue: str | None, out: Path) -> Figure:
    """`y` per epoch for each configuration, the band one std over seeds."""
    fig = Figure(figsize=(11, 5))
    ax = fig.subplots()
    many = hue is not None and curves[hue].nunique() > 10
    epochs = sorted(curves["epoch"].unique())
    # A band only where a configuration has several seeds (a search's trials have one).
    seeds = curves.groupby([hue, "epoch"] if hue else ["epoch"]).size().max()
    sns.lineplot(
        data=curves,
        x="epoch",
        y=y,
        hue=hue,
        errorbar="sd" if seeds > 1 else None,
        ax=ax,
        palette="viridis" if many else None,
        marker="o" if len(epochs) <= 30 else None,  # a curve of one epoch is a point
    )
    band = "band: ± 1 std over seeds" if seeds > 1 else "one seed per configuration"
    ax.set_title(f"{y} per epoch ({band})")
    integer_epoch_ticks(ax, epochs)
    ax.grid(alpha=0.3)
    if hue is not None:  # beside the axes, never over the lines
        ax.legend(title=hue, fontsize=7, title_fontsize=8, loc="upper left",
                  bbox_to_anchor=(1.01, 1.0), borderaxespad=0, ncol=2 if many else 1)  # fmt: skip
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    return fig


def metric_by_factor(
    runs: pd.DataFrame, factors: list[str], value: str, hue: str | None, out: Path
) -> Figure:
    """The metric against each swept key, mean with ± 1 std error bars over the other keys."""
    # Swept numbers are plotted as categories on purpose; matplotlib would log that per axis.
    logging.getLogger("matplotlib.category").setLevel(logging.WARNING)
    count = len(factors)
    columns = min(count, 3)
    rows = math.ceil(count / columns)
    fig = Figure(figsize=(5 * columns, 4 * rows))
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, factor in zip(axes, factors, strict=False):
        colour = hue if hue not in (None, factor) and runs[hue].nunique() > 1 else None
        # Swept values are categories here, shown in their natural (numeric) order.
        order = [str(v) for v in sorted(runs[factor].dropna().unique(), key=_sort_key)]
        data = runs.astype({factor: str, **({colour: str} if colour else {})})
        sns.pointplot(
            data=data,
            x=factor,
            y=value,
            hue=colour,
            order=order,
            errorbar="sd",
            dodge=0.3 if colour else False,
            capsize=0.1,
            ax=ax,
        )
        ax.set_title(f"{value} by {factor}")
        ax.grid(alpha=0.3)
    for ax in axes[count:]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    return fig


def _sort_key(value: object) -> tuple[int, float, str]:
    try:
        return (0, float(value), "")  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def integer_epoch_ticks(ax, epochs: list[int]) -> None:
    """Ticks at whole epochs only (one run of one epoch would get 0.96, 0.98, ... otherwise)."""
    if len(epochs) <= 20:
        ax.set_xticks(epochs)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
