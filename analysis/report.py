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
from pathlib import Path

import pandas as pd

if __package__ in (None, ""):  # run as a script: make `analysis` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import grid_report, plots, provenance_report, search_report
from analysis.collect import CollectError, sweep_progress
from analysis.comparisons import REPLICATE, natural_order
from analysis.factors import describe_changes
from analysis.page import Page, cell_text
from analysis.search_report import CONFIRMS, TRIAL
from analysis.stats import ReportError, summarise
from analysis.sweeps import (  # noqa: F401  (parse_baselines etc.: the command line's, and tests')
    ADAPTIVE_METRIC,
    Request,
    Sweeps,
    build,
    choose_baselines,
    parse_baselines,
    parse_window,
)
from sweeplab.run_format import sweeper_of

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
    ctx = build(request)
    out = ctx.out
    out.mkdir(parents=True, exist_ok=True)
    save_options(request, out)
    ctx.runs.drop(columns=["path"]).to_csv(out / "runs.csv", index=False)
    summarise(ctx.done, ctx.factors, ctx.label).to_csv(out / "summary.csv", index=False)
    ctx.comparisons.to_csv(out / "comparisons.csv", index=False)
    page = Page(f"Report: {', '.join(str(s) for s in request.sweeps)}")
    page.header = provenance_report.header()
    for add_section in SECTIONS:
        add_section(page, ctx)
    (out / "report.md").write_text(page.markdown())
    (out / "report.html").write_text(page.html())
    return out


def add_warnings_section(page: Page, ctx: Sweeps) -> None:
    """At the top: runs of mixed code or data, and config differences no factor explains."""
    for line in provenance_report.warnings(ctx.runs):
        page.text(line)
    if ctx.swept.unexplained:
        page.text(
            f"**Warning:** {', '.join(ctx.swept.unexplained)} differ between runs that no swept "
            "key explains (folders pooled from different sweeps, or defaults changed between "
            "them). No comparison credits them to a swept key: runs are paired only with runs "
            "that agree on them, and groups that never agree are not compared."
        )


def add_adaptive_section(page: Page, ctx: Sweeps) -> None:
    """An adaptive-seeds sweep: how its seeds were chosen, and how many each configuration
    got (its verdicts are in the comparisons below)."""
    if ctx.adaptive is None:
        return
    settings = sweeper_of(ctx.multiruns.get(ctx.request.sweeps[0]))
    looks = round(float(settings.get("alpha", 0.05)) / float(ctx.adaptive["look_alpha"].iloc[0]))
    detect = settings.get("detect")
    page.heading("Adaptive seeds")
    page.text(
        f"The seeds were adaptive (`hydra/sweeper=sweeplab_seeds`: min_seeds "
        f"{settings.get('min_seeds')}, max_seeds {settings.get('max_seeds')}, detect "
        f"{detect if detect is not None else 'none'}, alpha {settings.get('alpha')}): every "
        "configuration ran on the first seeds, then each round gave the next seed only to the "
        "configurations a still-open comparison needed. After each round every open comparison "
        f"was tested on its seeds so far at alpha / {looks} (one share per possible look), "
        "Holm's step-down within the round, decided ones kept: an error rate of at most alpha "
        "over every comparison and every round. "
        + (
            "The per-key comparisons below are the sweeper's own verdicts (`decisions.csv`)."
            if ctx.label == ADAPTIVE_METRIC
            else f"Its verdicts are on {ADAPTIVE_METRIC} (`decisions.csv`); the tests of "
            f"{ctx.label} below assume a fixed number of seeds, which this sweep did not have."
        )
    )
    if ctx.factors:
        seeds = ctx.done.groupby(ctx.factors, dropna=False, sort=True).size()
        table = seeds.rename("seeds").reset_index()
        page.table(table, "seeds each configuration got (completed runs)")


def add_configurations_section(page: Page, ctx: Sweeps) -> None:
    """One row per configuration, with links to its runs."""
    done, factors, label = ctx.done, ctx.factors, ctx.label
    if done.empty:
        return
    page.heading("Per configuration")
    table = grid_report.configuration_table(done, factors, label)
    table["runs"] = grid_report.runs_column(done, factors, ctx.out)
    if not ctx.gridded and factors:  # a search: best first
        table = table.sort_values(f"{label} mean ± std (n)", ascending=False, key=_means)
    caption = "n counts runs; a configuration's runs differ only in seed; each links its runs"
    if provenance_report.several_cpus(done):
        table["train s (mean)"] = math.nan
        caption += "; training seconds are not averaged across CPUs (Provenance: per CPU)"
    page.table(table, caption)


def add_figures_section(page: Page, ctx: Sweeps) -> None:
    """The report's figures, each drawn by the section it belongs to."""
    figures = [
        ("heatmap", "heatmap.png"),
        (f"{ctx.label} by each swept key", "metric_by_key.png"),
        ("val accuracy per epoch", "learning_curves.png"),
    ]
    shown = [(title, ctx.out / name) for title, name in figures if (ctx.out / name).exists()]
    if shown:
        page.heading("Figures")
        for title, path in shown:
            page.figure(path, title)


def _means(column: pd.Series) -> pd.Series:
    return column.map(lambda cell: cell.mean)


def add_provenance_section(page: Page, ctx: Sweeps) -> None:
    """What made the runs, and their timings per CPU."""
    runs, done = ctx.runs, ctx.done
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


def add_overview_section(page: Page, ctx: Sweeps) -> None:
    """The runs, the swept keys, the seeds and the metric, and what each level also changes."""
    runs, done, swept, label, request = ctx.runs, ctx.done, ctx.swept, ctx.label, ctx.request
    factors, baselines = swept.keys, ctx.baselines
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
        f"- metric: `{label}`{window}; statistics over completed runs whose files agree"
        + (
            "; the search chose on its objective (below), never on this metric"
            if ctx.searched
            else ""
        ),
    )
    changes = describe_changes(swept, baselines)
    if changes:
        page.text("What else a swept key's levels change (a preset or group sets several keys):")
        page.text(*changes)


def add_progress_section(page: Page, ctx: Sweeps) -> None:
    """Where each sweep stands, when it is not simply finished."""
    for sweep in ctx.request.sweeps:
        _progress(page, sweep, ctx.runs)


def _progress(page: Page, sweep: Path, runs: pd.DataFrame) -> None:
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


def add_learning_curves(page: Page, ctx: Sweeps) -> None:
    """Val accuracy per epoch (a figure, shown under Figures): a grid of two or more keys as
    small multiples (a panel per value of its column key); a search's trials ranked, the best
    in colour, the pruned ones in grey with the rest."""
    runs, epochs, factors, out = ctx.runs, ctx.epochs, ctx.factors, ctx.out
    panel_key, searched = ctx.cols_key if ctx.gridded else None, bool(ctx.searched)
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


def add_inconsistent_section(page: Page, ctx: Sweeps) -> None:
    """Runs whose files disagree, and runs an epoch window leaves out."""
    runs, epochs, request = ctx.runs, ctx.epochs, ctx.request
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


def add_problems_section(page: Page, ctx: Sweeps) -> None:
    """Runs that did not complete, with their errors."""
    runs = ctx.runs
    bad = runs[~runs["status"].isin(["completed", "pruned"])]  # pruned runs get their section
    if bad.empty:
        return
    page.heading("Runs not completed")
    errors = [str(e or "").splitlines()[-1] if str(e or "") else "" for e in bad["error"]]
    page.table(pd.DataFrame({"run": bad["run"], "status": bad["status"], "error": errors}))


# The report, in the order it reads (each section adds nothing where it has nothing to say).
SECTIONS = [
    add_warnings_section,
    add_overview_section,
    add_progress_section,
    add_adaptive_section,
    search_report.add_search_section,  # a search leads with the search
    grid_report.add_answer_section,
    grid_report.add_comparisons_section,
    grid_report.add_grids_section,
    add_configurations_section,
    grid_report.add_best_section,
    add_learning_curves,
    add_inconsistent_section,
    add_problems_section,
    add_provenance_section,
    add_figures_section,
]


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
