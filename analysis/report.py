"""Compare the runs of one or more sweep folders: comparisons that decide, tables, figures.

    python analysis/report.py multirun/wd_vs_noise
    python analysis/report.py multirun/wd_vs_noise --baseline regularization.noise_std=0.1 \
        --detect 0.002
    python analysis/report.py multirun/a multirun/b --metric val_accuracy --epochs 20:50 \
        --rows model --cols regularization.noise_std

Writes report.md, report.html (one self-contained page), runs.csv, summary.csv,
comparisons.csv and PNG figures into <first sweep>/report/ (or --out). Statistics use
completed runs whose files agree; the others are listed with what is wrong.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

if __package__ in (None, ""):  # run as a script: make `analysis` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import grid_report, plots, provenance_report
from analysis.collect import (
    CollectError,
    config_columns,
    load_epochs,
    load_runs,
    sweep_progress,
)
from analysis.comparisons import REPLICATE, compare_factors, finish, levels, natural_order
from analysis.factors import Factors, describe_changes, level_changes, swept_factors
from analysis.page import Estimate, Page, cell_text, is_fraction
from analysis.search_report import CONFIRMS, TRIAL, add_search_sections, search_settings
from analysis.stats import (
    ReportError,
    configuration_table,
    metric_label,
    metric_values,
    summarise,
)
from sweeplab.errors import closest_key  # the same suggestion as run.py's
from sweeplab.run_format import read_multirun, sweeper_of

MAX_GRID_LEVELS = 12  # a key with more values (an Optuna search) gets no rows x cols table


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


def _sweep_orders(runs: pd.DataFrame, sweeps: list[Path]) -> dict[str, list[str]]:
    """Each swept override's values in the order the sweep gave them (its first is the
    default baseline), from the sweeps' multirun.yaml."""
    orders: dict[str, list[str]] = {}
    for sweep in sweeps:
        multirun = read_multirun(sweep)
        if multirun is None:
            continue
        hydra = multirun.get("hydra") or {}
        texts = [f"{k}={v}" for k, v in (sweeper_of(multirun).get("params") or {}).items()]
        for text in [*texts, *((hydra.get("overrides") or {}).get("task") or [])]:
            key, _, values = str(text).partition("=")
            if "," in values:
                orders.setdefault(key.lstrip("+~"), [v.strip() for v in values.split(",")])
    return orders


def choose_baselines(runs: pd.DataFrame, factors: list[str], request: Request) -> dict[str, object]:
    """Per factor: --baseline's value, else the first value the sweep gave, else the lowest."""
    orders = _sweep_orders(runs, request.sweeps)
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


OPTIONS = "options.yaml"  # in the report folder: the options it was written with
KEPT = ("metric", "window", "rows", "cols", "baselines", "detect")  # what a rerun reuses


def save_options(request: Request, out: Path) -> None:
    """Record the report's options beside it, so that the sweep-end report of a rerun is
    written with them (not with the defaults over a report the user asked for)."""
    import yaml

    kept = {key: getattr(request, key) for key in KEPT}
    kept["window"] = list(kept["window"]) if kept["window"] else None
    (out / OPTIONS).write_text(yaml.safe_dump(kept, sort_keys=False))


def saved_request(sweep: Path) -> Request:
    """The request the sweep's own report was last written with (defaults when none)."""
    import yaml

    try:
        kept = yaml.safe_load((sweep / "report" / OPTIONS).read_text()) or {}
    except (OSError, yaml.YAMLError):
        kept = {}
    options = {key: kept[key] for key in KEPT if kept.get(key) is not None}
    if "window" in options:
        options["window"] = tuple(options["window"])
    return Request([sweep], **options)


def write_report(request: Request) -> Path:
    """Collect, check, compare, tabulate and plot; return the folder written."""
    runs = provenance_report.restrict(load_runs(request.sweeps), request.code_version)
    epochs = load_epochs(runs)
    label = metric_label(request.metric, request.window)
    per_epoch = request.window is not None or request.metric not in runs.columns
    values = metric_values(runs, epochs, request.metric, request.window)
    runs[label] = values.where(runs["metrics_ok" if per_epoch else "summary_ok"])
    rows_key, cols_key = resolve_key(runs, request.rows), resolve_key(runs, request.cols)
    required = [key for key in (rows_key, cols_key) if key]
    swept = swept_factors(runs, required)
    factors = swept.keys
    rows_key, cols_key = (
        swept.aliases.get(key, key) if key else key for key in (rows_key, cols_key)
    )
    # Runs are paired only with runs that agree on what no factor explains, and, when several
    # sweeps are pooled, only within their own sweep.
    strata = swept.unexplained + (["sweep"] if len(request.sweeps) > 1 else [])
    rows_key = rows_key or (factors[0] if factors else None)
    cols_key = cols_key or next((f for f in factors if f != rows_key), None)

    out = request.out or request.sweeps[0] / "report"
    out.mkdir(parents=True, exist_ok=True)
    save_options(request, out)
    done = runs[(runs["status"] == "completed") & runs[label].notna()]
    # A key can be swept yet have one value left among the usable runs: nothing to compare.
    factors = [f for f in factors if f in required or done[f].astype(str).nunique() > 1]
    rows_key = rows_key if rows_key in factors else (factors[0] if factors else None)
    cols_key = (
        cols_key if cols_key in factors else next((f for f in factors if f != rows_key), None)
    )
    baselines = choose_baselines(done, factors, request)
    swept.keys, swept.changes = factors, level_changes(done, swept, baselines)
    gridded = is_grid(done, factors)
    detect = request.detect
    raw = [compare_factors(done, factors, label, baselines, strata, detect)]
    if gridded and len(factors) > 1:
        raw.append(
            grid_report.configuration_comparisons(done, factors, label, baselines, strata, detect)
        )
    compared = finish(pd.concat(raw, ignore_index=True), detect)  # one family for Holm
    compared = grid_report.mark_mixed(compared, done, factors)
    runs.drop(columns=["path"]).to_csv(out / "runs.csv", index=False)
    summarise(done, factors, label).to_csv(out / "summary.csv", index=False)
    compared.to_csv(out / "comparisons.csv", index=False)

    page = Page(f"Report: {', '.join(str(s) for s in request.sweeps)}")
    page.header = provenance_report.header()
    for line in provenance_report.warnings(runs):
        page.text(line)
    _warn_unexplained(page, swept)
    _overview(page, runs, done, swept, label, request, baselines)
    for sweep in request.sweeps:
        _progress(page, sweep, runs)
    # A search leads with the search (best trial, history, importances or Pareto front,
    # confirmation); its trials are one seed each, so no comparison of levels stands.
    searched = [sweep for sweep in request.sweeps if search_settings(sweep)]
    for sweep in searched:
        add_search_sections(page, sweep, runs, out, factors)
    if factors and len(done) and not searched:
        grid_report.answer(page, compared, label)
        grid_report.comparisons(
            page, done, factors, label, baselines, compared, request.detect, strata
        )
    if gridded and len(done):
        assert rows_key is not None
        grid_report.grids(page, done, factors, rows_key, cols_key, label, baselines, compared, out)
    elif len(done) and not factors:
        summary = summarise(done, [], label).iloc[0]
        page.heading(label)
        mean, std, n = summary["mean"], summary["std"], int(summary["n"])
        page.text(str(Estimate(mean, std, n, is_fraction(label))))
    if len(done):
        page.heading("Per configuration")
        table = configuration_table(done, factors, label)
        table["runs"] = grid_report.runs_column(done, factors, out)
        if not gridded and factors:  # a search: best first
            table = table.sort_values(f"{label} mean ± std (n)", ascending=False, key=_means)
        caption = "n counts runs; a configuration's runs differ only in seed; each links its runs"
        if provenance_report.several_cpus(done):
            table["train s (mean)"] = math.nan
            caption += "; training seconds are not averaged across CPUs (Provenance: per CPU)"
        page.table(table, caption)
    grid_report.best(page, done, epochs, factors, label, request.window, out)
    _learning_curves(runs, epochs, factors, cols_key if gridded else None, bool(searched), out)
    _inconsistent(page, runs, epochs, request)
    _problems(page, runs)
    _provenance(page, runs, done)
    figures = [
        ("heatmap", "heatmap.png"),
        (f"{label} by each swept key", "metric_by_key.png"),
        ("val accuracy per epoch", "learning_curves.png"),
    ]
    shown = [(title, out / name) for title, name in figures if (out / name).exists()]
    if shown:
        page.heading("Figures")
        for title, path in shown:
            page.figure(path, title)
    (out / "report.md").write_text(page.markdown())
    (out / "report.html").write_text(page.html())
    return out


def _means(column: pd.Series) -> pd.Series:
    return column.map(lambda cell: cell.mean)


def _provenance(page: Page, runs: pd.DataFrame, done: pd.DataFrame) -> None:
    """What made the runs, and their timings per CPU."""
    page.heading("Provenance: what made these runs")
    page.text(
        "From each run's summary.json (`unknown`: written before sweeplab recorded it). Runs of "
        "different code versions or data are never pooled without a mark."
    )
    page.table(provenance_report.table(runs))
    if len(done) and "train_seconds" in done:
        page.table(
            provenance_report.timings_by_cpu(done),
            "Timings per CPU (completed runs): never averaged across CPUs",
        )


def _warn_unexplained(page: Page, swept: Factors) -> None:
    """At the top: config differences no factor explains, and what the report does of them."""
    if not swept.unexplained:
        return
    page.text(
        f"**Warning:** {', '.join(swept.unexplained)} differ between runs that no swept key "
        "explains (folders pooled from different sweeps, or defaults changed between them). "
        "No comparison credits them to a swept key: runs are paired only with runs that agree "
        "on them, and groups that never agree are not compared."
    )


def _overview(page, runs, done, swept, label, request, baselines) -> None:
    factors = swept.keys
    counts = runs["status"].value_counts().to_dict()
    seeds = sorted(done[REPLICATE].dropna().unique().tolist()) if REPLICATE in done else []
    window = (
        f", averaged over epochs {request.window[0]}-{request.window[1]}" if request.window else ""
    )
    source = (
        "inferred from the config values that differ (these folders have no "
        "`.hydra/overrides.yaml`)"
        if swept.inferred
        else "the keys and config groups the sweep's overrides set"
    )
    page.text(
        f"- runs: {len(runs)} ({', '.join(f'{n} {s}' for s, n in sorted(counts.items()))})",
        f"- swept keys: {', '.join(factors) if factors else 'none'}; seeds (replicates): {seeds}",
        f"- factors: {source}",
        f"- metric: `{label}`{window}; statistics over completed runs whose files agree",
    )
    changes = describe_changes(swept, baselines)
    if changes:
        page.text("What else a swept key's levels change (a preset or group sets several keys):")
        page.text(*changes)


def _progress(page: Page, sweep: Path, runs: pd.DataFrame) -> None:
    """Where a sweep stands, when it is not simply finished."""
    progress = sweep_progress(sweep, runs)
    if progress is None:
        return
    unfinished = progress["running"] or progress["stopped"] or progress["not started"]
    if not unfinished and not progress["failed"]:
        return
    jobs = progress["jobs"] if progress["jobs"] is not None else "?"
    shown = ("completed", "pruned", "running", "failed", "stopped")
    parts = [f"{progress[k]} {k}" for k in shown if k != "pruned" or progress[k]]
    if progress["not started"] is not None:
        parts.append(f"{progress['not started']} not started")
    page.heading(f"Where {sweep} stands")
    lines = [f"- {jobs} jobs: {', '.join(parts)}"]
    if progress["seconds left"] is not None:
        minutes = progress["seconds left"] / 60
        lines.append(f"- about {minutes:.0f} min left at the pace of the finished runs")
    page.text(*lines)


def _learning_curves(runs, epochs, factors, panel_key, searched, out) -> None:
    """Val accuracy per epoch: a grid of two or more keys as small multiples (a panel per
    value of its column key); a search's trials ranked, the best in colour, the pruned ones
    in grey with the rest."""
    shown = runs[runs["status"].isin(["completed", "pruned"] if searched else ["completed"])]
    val = epochs[(epochs["split"] == "val") & epochs["path"].isin(shown["path"])]
    if val.empty:
        return
    val = val.rename(columns={"accuracy": "val_accuracy"})
    if not factors:
        plots.learning_curves(val, "val_accuracy", None, out / "learning_curves.png")
        return
    named = shown.set_index("path")
    panel = panel_key if panel_key in factors and len(factors) > 1 else None

    def short(keys: list[str]) -> pd.Series:  # "weight_decay=1e-4, noise_std=0.1", in order
        ordered = named.sort_values(keys, key=lambda c: c.map(natural_order))
        parts = [key.split(".")[-1] + "=" + ordered[key].map(cell_text) for key in keys]
        names = parts[0].str.cat(parts[1:], sep=", ") if len(parts) > 1 else parts[0]
        return names.astype(pd.CategoricalDtype(names.unique(), ordered=True))

    if searched and TRIAL in named:  # a confirmation run is its trial's configuration
        trial = named[CONFIRMS].fillna(named[TRIAL]) if CONFIRMS in named else named[TRIAL]
        config = "trial " + trial.map(lambda t: cell_text(int(float(t))) if pd.notna(t) else "?")
    else:
        config = short([f for f in factors if f != panel])
    hue = "trial" if searched and TRIAL in named else "configuration"
    val = val.assign(**{hue: val["path"].map(config)})
    panel_name = panel.split(".")[-1] if panel else None
    if panel:
        val[panel_name] = val["path"].map(named[panel].map(cell_text))
    plots.learning_curves(
        val, "val_accuracy", hue, out / "learning_curves.png",
        panel=panel_name, best=8 if searched else None,
    )  # fmt: skip


def _inconsistent(page: Page, runs: pd.DataFrame, epochs: pd.DataFrame, request) -> None:
    bad = runs[runs["problems"].astype(bool)]
    short = pd.DataFrame()
    if request.window:
        last = epochs.groupby("path")["epoch"].max()
        reached = runs["path"].map(last)
        short = runs[(runs["status"] == "completed") & ~(reached >= request.window[1])]
    if bad.empty and short.empty:
        return
    page.heading("Inconsistent runs")
    if len(bad):
        page.text("Left out of the statistics that need the missing or broken part:")
        page.table(bad[["run", "status", "problems"]])
    if len(short):
        first, last = request.window
        page.text(
            f"{len(short)} completed run(s) do not reach epoch {last}, so the window "
            f"{first}:{last} leaves them out: " + ", ".join(short["run"])
        )


def _problems(page: Page, runs: pd.DataFrame) -> None:
    bad = runs[~runs["status"].isin(["completed", "pruned"])]  # pruned runs get their section
    if bad.empty:
        return
    page.heading("Runs not completed")
    errors = [str(e or "").splitlines()[-1] if str(e or "") else "" for e in bad["error"]]
    page.table(pd.DataFrame({"run": bad["run"], "status": bad["status"], "error": errors}))


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
    parser.add_argument(
        "--baseline", action="append", default=[], metavar="KEY=VALUE",
        help="the level others are compared with (default: the sweep's first value); repeatable",
    )  # fmt: skip
    parser.add_argument(
        "--detect", type=float, help="a difference to plan for: how many seeds it needs"
    )
    parser.add_argument("--out", type=Path, help="output folder (default: <first sweep>/report)")
    parser.add_argument(
        "--code-version", help="report only on the runs of this code version (a prefix will do)"
    )
    args = parser.parse_args(argv)
    try:
        request = Request(
            args.sweeps, args.metric, parse_window(args.epochs), args.rows, args.cols, args.out,
            parse_baselines(args.baseline), args.detect, args.code_version,
        )  # fmt: skip
        out = write_report(request)
    except (CollectError, ReportError) as err:
        print(f"report: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out / 'report.md'} and report.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
