"""Seaborn figures of a report: heatmap over two keys, learning curves, metric per key."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure  # not pyplot: no global state, no display needed
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from analysis.comparisons import natural_order
from analysis.page import cell_text, is_fraction


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
    scale, unit = percent_scale(label)
    places = 2 if scale == 100 else 4
    data = data.assign(mean=data["mean"] * scale, std=data["std"] * scale)
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
                notes.at[r, c] = f"{mean:.{places}f}{mark}\nn={n:.0f}"
            else:
                notes.at[r, c] = f"{mean:.{places}f}{mark}\n±{std:.{places}f}\nn={n:.0f}"
    width = 2 + 1.6 * len(means.columns)
    fig = Figure(figsize=(max(width, 6), 1.5 + 0.9 * len(means.index)))  # room for the bar label
    ax = fig.subplots()
    sns.heatmap(
        means, annot=notes.values, fmt="", cmap="viridis", ax=ax, cbar_kws={"label": label + unit}
    )
    title = f"{label}{unit}: mean ± std over seeds"
    ax.set_title(title + ("\n* differs from (base), Holm-adjusted p < 0.05" if cols else ""))
    ax.set_xticklabels([cell_text(c) for c in means.columns], rotation=0)
    ax.set_yticklabels([cell_text(r) for r in means.index], rotation=0)
    ax.set_ylabel(rows)
    ax.set_xlabel(cols or "")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    return fig


def percent_scale(name: str) -> tuple[int, str]:
    """How an axis shows a metric: an accuracy times 100 with ` (%)` after its name."""
    return (100, " (%)") if is_fraction(name) else (1, "")


def learning_curves(
    curves: pd.DataFrame,
    y: str,
    hue: str | None,
    out: Path,
    panel: str | None = None,
    best: int | None = None,
) -> Figure:
    """`y` per epoch for each configuration (`hue`), the band one std over seeds where a
    configuration has several; one panel per value of `panel` (small multiples, so lines of
    one key do not hide those of another); with `best`, only the `best` configurations with
    the highest curves in colour and every other run in grey."""
    scale, unit = percent_scale(y)
    data = curves.assign(**{y: curves[y] * scale})
    panels = _levels(data[panel]) if panel else [None]
    seeds = data.groupby([c for c in (panel, hue) if c] + ["epoch"]).size().max()
    epochs = sorted(data["epoch"].unique())
    levels = _levels(data[hue]) if hue else []
    shown = levels
    if best is not None and len(levels) > best:
        peak = data.groupby([hue, "epoch"])[y].mean().groupby(level=0).max()
        shown = peak.sort_values(ascending=False).index[:best].tolist()
    colours = sns.color_palette("tab10" if len(shown) <= 10 else "viridis", max(len(shown), 1))
    palette = dict(zip(shown, colours, strict=False))
    across = min(len(panels), 4)  # more panels wrap onto further rows
    down = math.ceil(len(panels) / across)
    fig = Figure(figsize=(4.2 * across + 3 if panel else 10, 4.4 * down + 0.4))
    axes = fig.subplots(down, across, sharey=True, squeeze=False).ravel()
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    for ax, value in zip(axes, panels, strict=False):
        part = data if panel is None else data[data[panel] == value]
        rest = part[~part[hue].isin(shown)] if hue else part.iloc[:0]
        if len(rest):  # the others: one thin grey line per run, under the chosen ones
            sns.lineplot(data=rest, x="epoch", y=y, units="path", estimator=None, color="0.78",
                         linewidth=0.8, marker="o", markersize=3, ax=ax, legend=False)  # fmt: skip
        lead = part[part[hue].isin(shown)] if hue else part
        sns.lineplot(
            data=lead,
            x="epoch",
            y=y,
            hue=hue,
            hue_order=[h for h in shown if h in set(lead[hue])] if hue else None,
            palette=palette if hue else None,
            errorbar="sd" if seeds > 1 else None,
            err_kws={"alpha": 0.15},
            marker="o" if len(epochs) <= 30 else None,  # a curve of one epoch is a point
            ax=ax,
            legend=False,
        )
        ax.set_title(f"{panel}={value}" if panel else "", fontsize=10)
        ax.set_ylabel(y.replace("_", " ") + unit)
        integer_epoch_ticks(ax, epochs)
        ax.grid(alpha=0.3)
    band = "band: ± 1 std over seeds" if seeds > 1 else "one seed per configuration"
    title = f"{y.replace('_', ' ')} per epoch ({band})"
    if shown != levels:
        title += f"; the {len(shown)} best of {len(levels)} in colour, every other run grey"
    fig.suptitle(title, fontsize=11)
    if hue is not None:  # beside the axes, never over the lines
        handles = [Line2D([], [], color=palette[h], marker="o", label=str(h)) for h in shown]
        if shown != levels:
            handles.append(Line2D([], [], color="0.78", label=f"{len(levels) - len(shown)} others"))
        axes[across - 1].legend(handles=handles, title=hue, fontsize=7, title_fontsize=8,
                        loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)  # fmt: skip
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    return fig


def metric_by_factor(
    runs: pd.DataFrame, factors: list[str], value: str, hue: str | None, out: Path
) -> Figure:
    """The metric against each swept key, mean with ± 1 std error bars over the other keys;
    values as the command line writes them, the legend beside the axes."""
    # Swept numbers are plotted as categories on purpose; matplotlib would log that per axis.
    logging.getLogger("matplotlib.category").setLevel(logging.WARNING)
    scale, unit = percent_scale(value)
    count = len(factors)
    columns = min(count, 3)
    rows = math.ceil(count / columns)
    fig = Figure(figsize=(4.6 * columns + 1.8, 4 * rows))
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, factor in zip(axes, factors, strict=False):
        colour = hue if hue not in (None, factor) and runs[hue].nunique() > 1 else None
        # Swept values are categories here, shown in their natural (numeric) order.
        order = [cell_text(v) for v in sorted(runs[factor].dropna().unique(), key=natural_order)]
        data = runs.assign(**{factor: runs[factor].map(cell_text)})
        data[value] = data[value] * scale
        if colour:
            data[colour] = data[colour].map(cell_text)
        sns.pointplot(
            data=data, x=factor, y=value, hue=colour, order=order, errorbar="sd",
            dodge=0.3 if colour else False, capsize=0.1, ax=ax,
            hue_order=[cell_text(v) for v in sorted(runs[colour].unique(), key=natural_order)]
            if colour else None,
        )  # fmt: skip
        ax.set_title(f"{value} by {factor}", fontsize=10)
        ax.set_ylabel(value + unit)
        if len(order) > 4 or max(map(len, order)) > 8:  # long or many labels: slanted
            ax.tick_params(axis="x", labelrotation=30)
            for label in ax.get_xticklabels():
                label.set_horizontalalignment("right")
        ax.grid(alpha=0.3)
        if ax.get_legend() is not None:  # beside the axes, never over an error bar
            ax.legend(title=colour, fontsize=8, title_fontsize=8, loc="upper left",
                      bbox_to_anchor=(1.02, 1.0), borderaxespad=0)  # fmt: skip
    for ax in axes[count:]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    return fig


def _levels(column: pd.Series) -> list:
    """A column's values in their order: a categorical's own, else natural (numeric) order."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        present = set(column)
        return [value for value in column.cat.categories if value in present]
    return sorted(column.unique(), key=natural_order)


def integer_epoch_ticks(ax, epochs: list[int]) -> None:
    """Ticks at whole epochs only (one run of one epoch would get 0.96, 0.98, ... otherwise)."""
    if len(epochs) <= 20:
        ax.set_xticks(epochs)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
