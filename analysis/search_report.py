"""The report of a search (a sweep of sweeplab's Optuna sweeper), beside the grid report.

Reads the study from the sweep's storage (its `study.journal` file, or the storage its
multirun.yaml names) with Optuna's own reader, and the run folders: trial counts, the best
trial with every searched key, the optimization history against trial number and against
cumulative training seconds (pruned trials marked), Optuna's parameter importances and
parallel-coordinates plot, the pruned runs ranked by the epoch they reached, and the
confirmation runs of the best configurations compared with each other on their seeds.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from analysis.comparisons import REPLICATE, compare_levels, finish
from analysis.grid_report import mlflow_links, shown_comparisons
from analysis.page import Estimate, Page, folder_link, number
from analysis.plots import percent_scale
from sweeplab.run_format import is_search, read_multirun, sweeper_of

if TYPE_CHECKING:
    from analysis.sweeps import Sweeps

# Columns collect.py reads from a job's environment (the sweeper's hydra.job.env_set): the
# trial a run is, and the trial a confirmation run repeats.
TRIAL, CONFIRMS = "search.trial", "search.confirms"


def search_settings(sweep: Path) -> dict[str, Any] | None:
    """The sweeper settings of a sweeplab search sweep (from multirun.yaml), else None."""
    sweeper = sweeper_of(read_multirun(sweep))
    return sweeper if is_search(sweeper) else None


def load_study(sweep: Path, settings: dict[str, Any]) -> Any:
    """The sweep's study, read with Optuna (None when its storage holds none yet)."""
    from hydra_plugins.sweeplab_optuna_sweeper.study import sweep_study

    return sweep_study(sweep, settings.get("storage"), str(settings["study_name"]))


def metric_names(study: Any, runs: pd.DataFrame | None = None) -> list[str]:
    """The study's objectives by name: as the study records them (`metric_names`), else the
    runs' `objective` key (sweeplab's; a search without metric_names), else Optuna's."""
    names = study.metric_names
    if not names and runs is not None and "objective" in runs and len(study.directions) == 1:
        values = runs["objective"].dropna().astype(str).unique()
        names = list(values) if len(values) == 1 else None
    names = names or [f"objective {i}" for i in range(len(study.directions))]
    return [str(name) for name in names]


def trial_table(study: Any, runs: pd.DataFrame) -> pd.DataFrame:
    """One row per trial: number, state, value (a pruned trial's: its last reported value;
    one column per objective where there are several), epochs reached and training seconds
    (from its run folder), and its parameters."""
    names = metric_names(study, runs)
    paths = [str(Path(p).resolve()) for p in runs["path"]]
    by_folder = dict(zip(paths, runs.itertuples(), strict=True))
    rows = []
    for trial in study.get_trials(deepcopy=False):
        reported = trial.intermediate_values
        last = reported[max(reported)] if reported else None
        folder = trial.user_attrs.get("folder")
        run = by_folder.get(str(Path(folder).resolve())) if folder else None
        values = trial.values or []
        named = dict(zip(names, values, strict=False))
        rows.append(
            {
                "trial": trial.number,
                "state": trial.state.name.lower(),
                "value": values[0] if values else last,
                **(named if len(study.directions) > 1 else {}),
                "epochs": getattr(run, "epochs_completed", None)
                or (max(reported) if reported else None),
                "train_seconds": getattr(run, "train_seconds", None),
                "folder": folder,
                **trial.params,
            }
        )
    table = pd.DataFrame(rows)
    table.attrs["names"] = names  # the objectives' names, for the sections that show them
    return table


def history_figure(trials: pd.DataFrame, maximize: bool, name: str, out: Path) -> None:
    """Best value so far against trial number and against cumulative training seconds."""
    scale, unit = percent_scale(name)
    ordered = trials.sort_values("trial").assign(
        cumulative_seconds=lambda t: t["train_seconds"].fillna(0).cumsum(),
        value=lambda t: t["value"] * scale,
    )
    complete = ordered["value"].where(ordered["state"] == "complete")
    best = complete.cummax() if maximize else complete.cummin()
    ordered["best so far"] = best.ffill()  # pruned and failed trials keep the best so far
    fig = Figure(figsize=(12, 4.2))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, x, label in (
        (axes[0], "trial", "trial number"),
        (axes[1], "cumulative_seconds", "cumulative training seconds"),
    ):
        sns.scatterplot(
            data=ordered, x=x, y="value", hue="state", style="state", ax=ax, legend=ax is axes[1],
            markers={"complete": "o", "pruned": "X", "fail": "s", "running": "^"},
        )  # fmt: skip
        ax.step(
            ordered[x], ordered["best so far"], where="post", color="black", label="best so far"
        )
        ax.set_xlabel(label)
        ax.set_ylabel(name + unit)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    fig.suptitle("Optimization history (x: pruned trials, at the epoch they reached)")
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def readable_parallel(ax: Any, study: Any, name: str) -> None:
    """Optuna's parallel-coordinates plot made legible: a colour map whose worst trial is
    still visible (viridis, not near-white Blues), each axis named by the last part of its
    key in full (Optuna cuts long names), the objective by its name."""
    lines = ax.collections[0]
    lines.set_cmap("viridis")
    if lines.colorbar is not None:
        lines.colorbar.update_normal(lines)
        lines.colorbar.set_label(name)
    keys = sorted({key for trial in study.get_trials(deepcopy=False) for key in trial.params})
    labels = []
    for tick in ax.get_xticklabels():
        text = tick.get_text()
        cut = text.removesuffix("...")
        key = next((k for k in keys if k == text or (text != cut and k.startswith(cut))), text)
        labels.append(name if text == "Objective Value" else key.split(".")[-1])
    ax.set_xticks(ax.get_xticks(), labels, rotation=0, fontsize=9)
    ax.set_title(f"Parallel coordinates: one line per completed trial, coloured by {name}")


def _optuna_figure(plot: Any, study: Any, out: Path, polish: Any = None) -> bool:
    """Save one of Optuna's matplotlib plots (after `polish(axes, study)`); False when the
    study cannot draw it yet."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        try:
            axes = plot(study)
        except (ValueError, RuntimeError, ZeroDivisionError):
            return False
    if polish is not None:
        polish(axes, study)
    figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
    figure.set_size_inches(10, 5)
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    import matplotlib.pyplot as plt  # Optuna draws with pyplot: free its figure

    plt.close(figure)
    return True


def add_search_section(page: Page, ctx: Sweeps) -> None:
    """A search's sections, first in its report (nothing for other sweeps)."""
    for sweep in ctx.searched:
        _add_search(page, sweep, ctx.runs, ctx.out, ctx.factors)


def _add_search(page: Page, sweep: Path, runs: pd.DataFrame, out: Path, factors: list[str]) -> None:
    """The search's sections for one sweep; `factors` are the searched keys, which name each
    confirmed configuration."""
    settings = search_settings(sweep)
    study = load_study(sweep, settings) if settings else None
    if study is None or not study.get_trials(deepcopy=False):
        return
    from hydra_plugins.sweeplab_optuna_sweeper.study import pruner_of
    from optuna import importance
    from optuna.visualization import matplotlib as optuna_plots

    trials = trial_table(study, runs)
    counts = trials["state"].value_counts()
    page.heading(f"Search: study {study.study_name}")
    pruner, _ = pruner_of(study.user_attrs)
    objectives = ", ".join(
        f"{name} ({d.name.lower()})"
        for name, d in zip(trials.attrs["names"], study.directions, strict=True)
    )
    page.text(
        f"- {len(trials)} trials: {counts.get('complete', 0)} completed, "
        f"{counts.get('pruned', 0)} pruned, {counts.get('fail', 0)} failed, "
        f"{counts.get('running', 0)} running",
        f"- sampler {study.user_attrs.get('search.sampler', '?')}, pruner {pruner}; "
        f"objective: {objectives}; test accuracy is never used",
        f"- read it: optuna.load_study(study_name={study.study_name!r}, storage=...) on "
        f"{settings.get('storage') or sweep / 'study.journal'}",
    )
    if len(study.directions) > 1:
        _pareto(page, study, trials, out)
        _trials(page, study, trials, out)
        return
    maximize = study.direction.name == "MAXIMIZE"
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if done:
        best = study.best_trial
        folder = Path(best.user_attrs.get("folder") or "").resolve()
        test = runs.loc[[Path(p).resolve() == folder for p in runs["path"]], "test_accuracy"]
        name = trials.attrs["names"][0]
        link = folder_link(folder, out) if best.user_attrs.get("folder") else None
        page.text(
            f"- **best trial: {best.number}**, {name} {number(best.value, name)}"
            + (
                f", test accuracy {number(float(test.iloc[0]), 'test_accuracy')}"
                if len(test)
                else ""
            )
            + (f"; its run folder: {link.markdown()}" if link else "")
        )
        page.table(
            pd.DataFrame([{"key": k, "value": v} for k, v in best.params.items()]),
            f"Trial {best.number}'s configuration: every searched key",
        )
    history_figure(trials, maximize, trials.attrs["names"][0], out / "search_history.png")
    page.figure(out / "search_history.png", "optimization history")
    if len(done) >= 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                weights = importance.get_param_importances(study)
            except (ValueError, RuntimeError):
                weights = {}
        if weights:
            page.table(
                pd.DataFrame({"key": list(weights), "importance": list(weights.values())}),
                "Parameter importances (Optuna's default evaluator, over completed trials)",
            )
        if _optuna_figure(
            optuna_plots.plot_parallel_coordinate,
            study,
            out / "search_parallel.png",
            lambda axes, study: readable_parallel(axes, study, trials.attrs["names"][0]),
        ):
            page.figure(out / "search_parallel.png", "parallel coordinates of the searched keys")
    _confirmation(page, runs, factors)
    _trials(page, study, trials, out)


def _pareto(page: Any, study: Any, trials: pd.DataFrame, out: Path) -> None:
    """A multi-objective search: the Pareto front as a table and, for two or three
    objectives, Optuna's own Pareto-front plot."""
    front = sorted(t.number for t in study.best_trials)
    if not front:
        return
    names = trials.attrs["names"]
    table = trials[trials["trial"].isin(front)].drop(columns=["state", "value", "epochs"])
    page.heading("Pareto front")
    page.text(
        f"{len(front)} of {int((trials['state'] == 'complete').sum())} completed trials are on "
        "the front: no other trial is at least as good on every objective and better on one."
    )
    page.table(table.sort_values(names[0]), "The Pareto-optimal trials, by the first objective")
    from optuna.visualization import matplotlib as optuna_plots

    if len(names) <= 3 and _optuna_figure(
        optuna_plots.plot_pareto_front, study, out / "search_pareto.png"
    ):
        page.figure(out / "search_pareto.png", "Pareto front (every completed trial)")


def _trials(page: Any, study: Any, trials: pd.DataFrame, out: Path) -> None:
    """Every trial, best first, each linked to its run folder; a pruned trial's value is the
    last it reported (the epoch it reached)."""
    names = trials.attrs["names"]
    maximize = study.directions[0].name == "MAXIMIZE"
    shown = trials.rename(columns={"value": names[0]} if len(names) == 1 else {})
    shown = shown.drop(columns="value", errors="ignore")
    shown["folder"] = [
        [folder_link(f, out), *mlflow_links(f)] if f else "-" for f in shown["folder"]
    ]
    ranked = shown.sort_values(names[0], ascending=not maximize, na_position="last")
    page.heading("Every trial")
    page.text(
        f"Best {names[0]} first; a pruned trial's value is the last it reported, at the epoch "
        "it reached (left out of the statistics of completed runs). Each links its run folder."
    )
    page.table(ranked)


def configuration_name(run: pd.Series, trial: int, keys: list[str]) -> str:
    """`trial 7: lr 3.2e-03, weight_decay 1.1e-04`: a configuration by its trial and the last
    part of each searched key (floats in 2 significant digits)."""
    parts = []
    for key in keys:
        value = run[key]
        shown = f"{value:.2g}" if isinstance(value, float) else str(value)
        parts.append(f"{key.split('.')[-1]} {shown}")
    return f"trial {trial}: {', '.join(parts)}" if parts else f"trial {trial}"


def _confirmation(page: Any, runs: pd.DataFrame, factors: list[str]) -> None:
    """The confirmation runs: each configuration on its seeds, against the best by val."""
    if CONFIRMS not in runs:
        return
    confirm = runs[runs[CONFIRMS].notna() & (runs["status"] == "completed")].copy()
    if confirm.empty:
        return
    confirm["trial"] = confirm[CONFIRMS].astype(int)
    rows = []
    for trial, group in confirm.groupby("trial"):
        val, test = group["best_val_accuracy"], group["test_accuracy"]
        rows.append(
            {
                "trial": trial,
                "configuration": configuration_name(group.iloc[0], int(trial), factors),
                "seeds": sorted(group[REPLICATE].tolist()),
                "val mean": val.mean(),
                "val accuracy": Estimate(val.mean(), val.std(), len(val), True),
                "test accuracy": Estimate(test.mean(), test.std(), len(test), True),
            }
        )
    table = pd.DataFrame(rows).sort_values("val mean", ascending=False)
    best = int(table["trial"].iloc[0])
    page.heading("Confirmation: the best configurations on new seeds")
    page.table(
        table.drop(columns="val mean"),
        "Each configuration's val accuracy (the choice) and test accuracy, mean ± std (seeds)",
    )
    others = [t for t in table["trial"] if t != best]
    if not others:
        return
    compared = finish(pd.DataFrame([
        compare_levels(confirm, "trial", trial, best, [REPLICATE], "best_val_accuracy")
        for trial in others
    ]).assign(metric="best_val_accuracy"))  # fmt: skip
    page.text(
        f"Trial {best} has the best mean val accuracy on the new seeds. Each other "
        "configuration against it, paired on the seed, Holm-adjusted over these comparisons; "
        "`undecided` means these seeds cannot tell them apart yet."
    )
    names = dict(zip(table["trial"], table["configuration"], strict=True))
    compared["level"] = compared["level"].map(names)
    compared["baseline"] = names[best]
    shown = shown_comparisons(compared.drop(columns="factor"), "best_val_accuracy")
    page.table(shown.rename(columns={"level": "configuration", "baseline": "against"}))
