"""Comparisons without spread, on run folders the tests write: identical results in every pair,
the same difference in every pair, unpaired groups without spread, and the statistics around
them (power, seeds needed, intervals, heatmap marks). No CPU's rounding decides these."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml

from analysis import plots
from analysis.comparisons import detectable_difference, pairs_needed, power_table
from analysis.report import Request, main, write_report
from analysis.stats import describe

Accuracy = Callable[[float, float, int], float]  # (weight decay, noise, seed) -> test accuracy


def write_sweep(
    root: Path, accuracy: Accuracy, seeds: dict[float, list[int]] | None = None
) -> Path:
    """A weight decay x noise x seed sweep of completed run folders as sweeplab writes them:
    .hydra/config.yaml, summary.json and metrics.csv, with the test accuracy `accuracy` gives.
    `seeds` maps a weight decay to its seeds (default 0, 1, 2 for both)."""
    seeds = seeds or {0.0: [0, 1, 2], 0.01: [0, 1, 2]}
    for wd, wd_seeds in seeds.items():
        for noise in (0.0, 0.1):
            for seed in wd_seeds:
                folder = root / f"regularization.weight_decay={wd},noise_std={noise},seed={seed}"
                (folder / ".hydra").mkdir(parents=True)
                config = {"seed": seed, "mode": "train", "optimizer": {"lr": 0.01},
                          "regularization": {"weight_decay": wd, "noise_std": noise}}  # fmt: skip
                (folder / ".hydra" / "config.yaml").write_text(
                    yaml.safe_dump(config, sort_keys=False)
                )
                value = accuracy(wd, noise, seed)
                summary = {"status": "completed", "config_hash": f"{wd}-{noise}-{seed}",
                           "seed": seed, "test_accuracy": value, "best_val_accuracy": value,
                           "best_epoch": 1, "epochs_completed": 1, "params": 1000,
                           "train_seconds": 1.0}  # fmt: skip
                (folder / "summary.json").write_text(json.dumps(summary))
                rows = [(1, split, 0.5, value, 0.01, 1.0) for split in ("train", "val", "test")]
                pd.DataFrame(rows, columns=["epoch", "split", "loss", "accuracy", "lr", "seconds"]
                             ).to_csv(folder / "metrics.csv", index=False)  # fmt: skip
    return root


def noisy(wd: float, noise: float, seed: int) -> float:
    """An accuracy that varies with noise and seed in no regular way."""
    return 0.8 + 0.013 * noise * 10 * ((seed * 7 + 3) % 5) + 0.001 * seed**2


def report_of(root: Path, *args: str) -> tuple[pd.DataFrame, str]:
    out = root.parent / "report"
    assert main([str(root), "--out", str(out), *args]) == 0
    return pd.read_csv(out / "comparisons.csv"), (out / "report.md").read_text()


def weight_decay_row(table: pd.DataFrame) -> pd.Series:
    return table[table.factor == "regularization.weight_decay"].iloc[0]


def test_identical_results_on_every_seed_are_equivalent_with_p_1(tmp_path: Path) -> None:
    table, text = report_of(write_sweep(tmp_path / "sweep", noisy))
    row = weight_decay_row(table)
    assert (row.n, row.mean_diff, row.ci_low, row.ci_high) == (3, 0.0, 0.0, 0.0)  # 3 seeds
    assert (row.p, row.verdict, row.test) == (
        1.0,
        "equivalent (identical results)",
        "paired: identical on every seed",
    )
    assert table.p.notna().all() and table.p_holm.notna().all()
    assert not table.verdict.str.startswith("too few").any()
    assert "gave identical results on every seed" in text


def test_the_same_difference_in_every_pair_is_exact_with_p_0(tmp_path: Path) -> None:
    def shifted(wd: float, noise: float, seed: int) -> float:
        return noisy(wd, noise, seed) + (0.0125 if wd else 0.0)

    table, text = report_of(write_sweep(tmp_path / "sweep", shifted))
    row = weight_decay_row(table)
    assert row.mean_diff == pytest.approx(0.0125, abs=1e-12)
    assert (row.ci_low, row.ci_high) == pytest.approx((0.0125, 0.0125), abs=1e-12)
    assert (row.p, row.p_holm, row.verdict) == (0.0, 0.0, "higher")
    assert row.test == "paired: the same difference on every seed"
    # the configuration (wd 0.01, noise 0) against (0, 0): the same exact difference, marked
    cell = table[(table.factor == "configuration") & (table.level == "0.01, 0.0")].iloc[0]
    assert (cell.p, cell.verdict) == (0.0, "higher")
    assert "the same non-zero difference on every seed" in text


def test_a_lower_constant_difference_is_lower(tmp_path: Path) -> None:
    def worse(wd: float, noise: float, seed: int) -> float:
        return noisy(wd, noise, seed) - (0.002 if wd else 0.0)

    row = weight_decay_row(report_of(write_sweep(tmp_path / "sweep", worse))[0])
    assert (row.p, row.verdict) == (0.0, "lower")
    assert row.mean_diff == pytest.approx(-0.002, abs=1e-12)


def test_unpaired_groups_without_spread_get_an_exact_welch_answer(tmp_path: Path) -> None:
    seeds = {0.0: [0, 1], 0.01: [10, 11]}  # no seed in common: nothing pairs

    def flat(wd: float, noise: float, seed: int) -> float:
        return 0.85 + (0.05 if wd else 0.0)

    table, _ = report_of(write_sweep(tmp_path / "sweep", flat, seeds))
    row = weight_decay_row(table)
    assert row.test == "Welch: no spread in either level" and row.n == 4  # 2 + 2 seeds
    assert row.mean_diff == pytest.approx(0.05, abs=1e-12)
    assert (row.p, row.verdict) == (0.0, "higher")

    same = tmp_path / "same"
    row = weight_decay_row(report_of(write_sweep(same, lambda *_: 0.85, seeds))[0])
    assert (row.test, row.p, row.mean_diff) == ("Welch: every seed of both levels identical", 1, 0)
    assert row.verdict == "equivalent (identical results)"


def test_one_seed_gives_too_few_seeds_however_many_keys_it_crosses(tmp_path: Path) -> None:
    seeds = {0.0: [0], 0.01: [0]}  # one seed: two runs per weight decay, one per cell
    table, text = report_of(write_sweep(tmp_path / "sweep", noisy, seeds))
    cells = table[table.factor == "configuration"]
    assert len(cells) and (cells.verdict == "too few seeds (1)").all() and cells.p.isna().all()
    row = weight_decay_row(table)  # two runs over noise, but one seed: one unit, no test
    assert (row.n, row.verdict) == (1, "too few seeds (1)") and pd.isna(row.p)
    short = text[text.index("## In short") : text.index("## Comparisons")]
    assert "`regularization.weight_decay=0.01`: **too few seeds (1)**" in short
    assert "no detectable difference" not in text and "seed=0,1,2" in short


def test_the_power_table_and_seeds_needed_survive_zero_spread(tmp_path: Path) -> None:
    from analysis.collect import load_runs

    runs = load_runs([write_sweep(tmp_path / "sweep", noisy)])
    factors = ["regularization.weight_decay", "regularization.noise_std"]
    baselines = {key: 0.0 for key in factors}
    power = power_table(runs, factors, "test_accuracy", baselines, detect=0.002).set_index("factor")
    wd = power.loc["regularization.weight_decay"]
    assert wd["sd of per-seed differences"] == 0.0
    assert wd["detectable with 80% power"] == 0.0  # any true difference would show
    assert wd["seeds to detect 0.002"] == 2
    noise = power.loc["regularization.noise_std"]  # spread: an ordinary, positive answer
    assert noise["sd of per-seed differences"] > 0 and noise["detectable with 80% power"] > 0
    assert detectable_difference(3, 0.0) == 0.0 and pairs_needed(0.01, 0.0) == 2
    text = report_of(tmp_path / "sweep", "--detect", "0.002")[1]
    assert "seeds to detect 0.002" in text


def test_identical_runs_have_a_zero_width_interval(tmp_path: Path) -> None:
    summary = describe(pd.Series([0.9, 0.9, 0.9]))
    assert (summary["std"], summary["ci95_low"], summary["ci95_high"]) == (0.0, 0.9, 0.9)
    write_report(Request([write_sweep(tmp_path / "sweep", lambda *_: 0.9)], out=tmp_path / "r"))
    table = pd.read_csv(tmp_path / "r" / "summary.csv")
    assert (table["std"] == 0).all()
    assert (table["ci95_low"] == table["mean"]).all() and (
        table["ci95_high"] == table["mean"]
    ).all()


def test_the_heatmap_marks_a_cell_whose_difference_is_exact(tmp_path: Path) -> None:
    summary = pd.DataFrame(
        {"wd": [0.0, 0.0, 0.01, 0.01], "noise": [0.0, 0.1, 0.0, 0.1],
         "mean": [0.9, 0.9, 0.91, 0.9], "std": [0.0] * 4, "n": [3] * 4}
    )  # fmt: skip
    fig = plots.heatmap(
        summary, "wd", "noise", "test_accuracy", tmp_path / "h.png", {"0.01, 0.0"},
        {"wd": 0.0, "noise": 0.0},
    )  # fmt: skip
    notes = [text.get_text() for text in fig.axes[0].texts]
    assert "91.00 *\n±0.00\nn=3" in notes and "90.00 (base)\n±0.00\nn=3" in notes
    assert (tmp_path / "h.png").stat().st_size > 0


def test_a_one_column_heatmap_names_its_column_by_the_metric(tmp_path: Path) -> None:
    summary = pd.DataFrame(
        {"wd": [0.0, 0.01], "mean": [0.9, 0.91], "std": [0.01] * 2, "n": [3] * 2}
    )
    fig = plots.heatmap(summary, "wd", None, "test_accuracy", tmp_path / "h.png")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["test_accuracy"]


def test_curves_of_one_seed_each_draw_no_band_and_keep_the_legend_off_the_lines(
    tmp_path: Path,
) -> None:
    curves = pd.DataFrame({"epoch": [1, 2, 1, 2], "val_accuracy": [0.5, 0.6, 0.55, 0.7],
                           "config": ["a", "a", "b", "b"]})  # fmt: skip
    fig = plots.learning_curves(curves, "val_accuracy", "config", tmp_path / "c.png")
    (ax,) = fig.axes
    assert "one seed per configuration" in fig.get_suptitle() and not ax.collections  # no bands
    assert ax.get_ylabel() == "val accuracy (%)" and max(ax.lines[0].get_ydata()) == 60
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()  # the figure as it was saved
    legend = ax.get_legend().get_window_extent(renderer)
    assert legend.x0 >= ax.get_window_extent(renderer).x1  # beside the axes


def test_a_grid_of_two_keys_draws_a_panel_per_value_of_one_with_a_band_over_seeds(
    tmp_path: Path,
) -> None:
    rows = [
        {"epoch": e, "val_accuracy": 0.5 + 0.1 * e + wd + seed / 100, "path": f"{wd}{noise}{seed}",
         "configuration": f"wd={wd}", "noise_std": str(noise)}
        for wd in (0.0, 0.01, 0.02) for noise in (0, 0.1) for seed in (0, 1) for e in (1, 2)
    ]  # fmt: skip
    fig = plots.learning_curves(
        pd.DataFrame(rows), "val_accuracy", "configuration", tmp_path / "c.png", panel="noise_std"
    )
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["noise_std=0", "noise_std=0.1"]  # small multiples, not one tangle
    assert all(len(ax.collections) == 3 for ax in fig.axes)  # a band per configuration
    assert "band: ± 1 std over seeds" in fig.get_suptitle()
    labels = [t.get_text() for t in fig.axes[-1].get_legend().get_texts()]
    assert labels == ["wd=0.0", "wd=0.01", "wd=0.02"]


def test_a_search_draws_its_best_trials_in_colour_and_every_other_run_in_grey(
    tmp_path: Path,
) -> None:
    rows = [
        {"epoch": e, "val_accuracy": t / 10 + e / 100, "path": f"t{t}", "trial": f"trial {t}"}
        for t in range(5) for e in range(1, (3 if t else 2))  # trial 0 pruned after epoch 1
    ]  # fmt: skip
    fig = plots.learning_curves(
        pd.DataFrame(rows), "val_accuracy", "trial", tmp_path / "c.png", best=2
    )
    (ax,) = fig.axes
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["trial 4", "trial 3", "3 others"]
    grey = [line for line in ax.lines if line.get_color() == "0.78" and len(line.get_xdata())]
    assert len(grey) == 3  # trials 0 (pruned: one point), 1 and 2
    assert "the 2 best of 5 in colour" in fig.get_suptitle()


def test_seeds_to_decide_asks_for_more_seeds_at_holms_strictest_level() -> None:
    from analysis.comparisons import seeds_to_decide

    # significant at 5 % with 3 seeds, undecided after Holm over 10: never "2 seeds would do"
    assert seeds_to_decide(3, -0.0044, 0.00076, None, alpha=0.005) >= 4
    assert seeds_to_decide(3, -0.004, 0.004, None, alpha=0.005) > seeds_to_decide(
        3, -0.004, 0.004, None
    )
    # with a margin, the larger of the margin and the observed difference is what to detect
    assert seeds_to_decide(3, 0.0001, 0.002, 0.002) == pairs_needed(0.002, 0.002)
    assert pd.isna(seeds_to_decide(1, 0.01, float("nan"), None))  # no spread known
