"""Compare the runs of one or more sweep folders: tables (CSV, Markdown) and seaborn figures.

    python analysis/report.py multirun/wd_vs_noise
    python analysis/report.py multirun/a multirun/b --metric val_accuracy --epochs 20:50 \
        --rows model --cols regularization.noise_std

Writes runs.csv, summary.csv, report.md and PNG figures into <first sweep>/report/ (or --out).
Statistics use completed runs only; the others are listed with their errors.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

if __package__ in (None, ""):  # run as a script: make `analysis` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import plots
from analysis.collect import (
    CollectError,
    config_columns,
    load_epochs,
    load_runs,
    runtime_columns,
)
from analysis.stats import (
    ReportError,
    cell_table,
    configuration_table,
    format_cell,
    metric_label,
    metric_values,
    summarise,
    swept_keys,
)


@dataclass
class Request:
    sweeps: list[Path]
    metric: str = "test_accuracy"
    window: tuple[int, int] | None = None
    rows: str | None = None
    cols: str | None = None
    out: Path | None = None


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


def resolve_key(runs: pd.DataFrame, key: str | None) -> str | None:
    """Accept a group name for its `.name` key (`model` -> `model.name`)."""
    if key is not None and f"{key}.name" in runs.columns:
        return f"{key}.name"  # a config group, not the summary's field of the same name
    if key is None or key in runs.columns:
        return key
    keys = ", ".join(config_columns(runs))
    raise ReportError(f"unknown key {key!r}; config keys are: {keys}")


def markdown(table: pd.DataFrame, index: bool = True) -> str:
    """A pandas frame as a GitHub Markdown table (no extra dependency)."""
    frame = table.reset_index() if index else table
    header = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join("" if pd.isna(v) else str(v) for v in row) + " |")
    return "\n".join(lines)


def write_report(request: Request) -> Path:
    """Collect, summarise and plot; return the folder written."""
    runs = load_runs(request.sweeps)
    epochs = load_epochs(runs)
    label = metric_label(request.metric, request.window)
    runs[label] = metric_values(runs, epochs, request.metric, request.window)
    rows_key, cols_key = resolve_key(runs, request.rows), resolve_key(runs, request.cols)
    config_keys = config_columns(runs) + (["sweep"] if len(request.sweeps) > 1 else [])
    required = [key for key in (rows_key, cols_key) if key]
    factors = swept_keys(runs, config_keys, required, runtime_columns(runs))
    rows_key = rows_key or (factors[0] if factors else None)
    cols_key = cols_key or next((f for f in factors if f != rows_key), None)

    out = request.out or request.sweeps[0] / "report"
    out.mkdir(parents=True, exist_ok=True)
    done = runs[runs["status"] == "completed"]
    summary = summarise(done, factors, label)
    runs.drop(columns=["path"]).to_csv(out / "runs.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)

    lines = [f"# Report: {', '.join(str(s) for s in request.sweeps)}", ""]
    lines += _overview(runs, done, factors, label, request)
    figures = []
    if factors and len(done):
        assert rows_key is not None
        grid_keys = [k for k in (rows_key, cols_key) if k]
        table = summary if grid_keys == factors else summarise(done, grid_keys, label)
        lines += [f"## {label}: {rows_key} x {cols_key or '-'}", "", "mean ± std (n seeds)", ""]
        grid_cells = cell_table(table, rows_key, cols_key)
        grid_cells.index.name = f"{rows_key} \\ {cols_key}" if cols_key else rows_key
        lines += [markdown(grid_cells), ""]
        grid = (
            table.pivot_table(index=rows_key, columns=cols_key, values="mean", dropna=False)
            if cols_key
            else table.set_index(rows_key)[["mean"]]
        )
        grid.to_csv(out / "heatmap.csv")  # the heatmap's numbers: mean per cell
        plots.heatmap(table, rows_key, cols_key, label, out / "heatmap.png")
        figures.append(("heatmap", "heatmap.png"))
        for factor in factors if len(factors) > 1 else []:  # marginal tables, one per key
            marginal = cell_table(summarise(done, [factor], label), factor, None)
            lines += [f"### {label} by {factor}", "", markdown(marginal), ""]
        plots.metric_by_factor(done, factors, label, cols_key, out / "metric_by_key.png")
        figures.append((f"{label} by each swept key", "metric_by_key.png"))
    elif len(done):
        lines += [f"## {label}", "", format_cell(*summary.loc[0, ["mean", "std", "n"]]), ""]
    if len(done):
        lines += ["## Per configuration", ""]
        lines += [markdown(configuration_table(done, factors, label), index=False), ""]
    lines += _best(done, epochs, factors, label, request)
    curves = _curves(runs, epochs, factors)
    if not curves.empty:
        plots.learning_curves(
            curves, "val_accuracy", "config" if factors else None, out / "learning_curves.png"
        )
        figures.append(("val accuracy per epoch", "learning_curves.png"))
    lines += _problems(runs)
    if figures:
        lines += ["## Figures", ""] + [f"![{title}]({name})" for title, name in figures] + [""]
    (out / "report.md").write_text("\n".join(lines))
    return out


def _overview(runs, done, factors, label, request) -> list[str]:
    counts = runs["status"].value_counts().to_dict()
    seeds = sorted(done["seed"].dropna().unique().tolist()) if "seed" in done else []
    window = (
        f", averaged over epochs {request.window[0]}-{request.window[1]}" if request.window else ""
    )
    return [
        f"- runs: {len(runs)} ({', '.join(f'{n} {s}' for s, n in sorted(counts.items()))})",
        f"- swept keys: {', '.join(factors) if factors else 'none'}; seeds (replicates): {seeds}",
        f"- metric: `{label}`{window}; statistics over completed runs only",
        "",
    ]


def _best(done, epochs, factors, label, request) -> list[str]:
    """The configuration with the best mean val accuracy, and its test numbers."""
    if done.empty:
        return []
    select = "val_accuracy" if request.window else "best_val_accuracy"
    chosen = done.assign(_select=metric_values(done, epochs, select, request.window))
    groups = chosen.groupby(factors, dropna=False) if factors else [((), chosen)]
    scored = [(group["_select"].mean(), key, group) for key, group in groups]
    score, key, group = max(scored, key=lambda item: item[0])
    key = key if isinstance(key, tuple) else (key,)
    where = ", ".join(f"{f}={v}" for f, v in zip(factors, key, strict=True)) or "all runs"
    test, value = group["test_accuracy"].astype(float), group[label].dropna()
    return [
        "## Best configuration (chosen on validation, never test)",
        "",
        f"- {where}: mean {metric_label(select, request.window)} {score:.4f}",
        f"- its test_accuracy: {format_cell(test.mean(), test.std(ddof=1), len(test))}",
        *(
            [f"- its {label}: {format_cell(value.mean(), value.std(ddof=1), len(value))}"]
            if label != "test_accuracy"
            else []
        ),
        "",
    ]


def _curves(runs: pd.DataFrame, epochs: pd.DataFrame, factors: list[str]) -> pd.DataFrame:
    val = epochs[epochs["split"] == "val"].rename(columns={"accuracy": "val_accuracy"})
    if not factors:
        return val.assign(config="all")
    # "weight_decay=0.001, noise_std=0.1": the last part of each key keeps legends short.
    named = runs.set_index("path")[factors].map(str)
    for key in factors:
        named[key] = key.split(".")[-1] + "=" + named[key]
    return val.assign(config=val["path"].map(named.agg(", ".join, axis=1)))


def _problems(runs: pd.DataFrame) -> list[str]:
    bad = runs[runs["status"] != "completed"]
    if bad.empty:
        return []
    lines = ["## Runs not completed", "", "| run | status | error |", "|---|---|---|"]
    for row in bad.itertuples():
        error = str(getattr(row, "error", "") or "").splitlines()
        lines.append(f"| {row.run} | {row.status} | {error[-1] if error else ''} |")
    return [*lines, ""]


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sweeps", nargs="+", type=Path, help="sweep or run folders")
    parser.add_argument(
        "--metric", default="test_accuracy", help="summary field or <split>_<column>"
    )
    parser.add_argument("--epochs", help="average a per-epoch metric over epochs FIRST:LAST")
    parser.add_argument("--rows", help="config key for table rows (default: first swept key)")
    parser.add_argument("--cols", help="config key for table columns (default: second swept key)")
    parser.add_argument("--out", type=Path, help="output folder (default: <first sweep>/report)")
    args = parser.parse_args(argv)
    try:
        request = Request(
            args.sweeps, args.metric, parse_window(args.epochs), args.rows, args.cols, args.out
        )
        out = write_report(request)
    except (CollectError, ReportError) as err:
        print(f"report: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
