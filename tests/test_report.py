"""Reports that decide: comparisons checked against scipy on the run summaries, honest tables
of a three-key sweep, inconsistent files named, every key of an Optuna search, where a sweep
stands, report.html rendered by a real headless Chromium."""

from __future__ import annotations

import json
import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from analysis.comparisons import holm
from analysis.report import ReportError, Request, choose_baselines, main, write_report
from tests.chromium import assert_reads_at_1280, seen_in_chromium
from tests.conftest import GRID, ROOT, lock_holder, made_once, run_sweep


def summaries_with_config(sweep: Path) -> pd.DataFrame:
    rows = []
    for path in sweep.glob("*/summary.json"):
        config = yaml.safe_load((path.parent / ".hydra" / "config.yaml").read_text())
        reg = config["regularization"]
        summary = json.loads(path.read_text())
        rows.append({"wd": reg["weight_decay"], "noise": reg["noise_std"], "seed": config["seed"],
                     "lr": config["optimizer"]["lr"], "acc": summary["test_accuracy"]})  # fmt: skip
    return pd.DataFrame(rows)


def control_accuracies(sweep: Path, seed: int = 0) -> None:
    """Replace each run's test accuracy with a value the test controls: a weight-decay effect
    of 0.02 plus seeded noise, so no pair of runs is identical and no rounding of this CPU's
    training can make the comparisons degenerate (those have their own tests)."""
    rng = np.random.default_rng(seed)
    for path in sorted(sweep.glob("*/summary.json")):
        config = yaml.safe_load((path.parent / ".hydra" / "config.yaml").read_text())
        effect = 0.02 if config["regularization"]["weight_decay"] > 0 else 0.0
        summary = json.loads(path.read_text())
        summary["test_accuracy"] = 0.8 + effect + float(rng.normal(0, 0.01))
        path.write_text(json.dumps(summary))


def test_comparisons_equal_a_paired_t_test_on_the_summaries_with_holm(
    sweep_copy: Path, tmp_path: Path
) -> None:
    control_accuracies(sweep_copy)
    out = write_report(Request([sweep_copy], out=tmp_path / "r"))
    table = pd.read_csv(out / "comparisons.csv")
    assert list(table.columns)[:12] == [
        "metric", "factor", "level", "baseline", "n", "mean_diff", "ci_low", "ci_high", "p",
        "p_holm", "verdict", "test",
    ]  # fmt: skip  # comparisons.csv's columns as they always were; new ones only follow
    assert table["mixed"].isna().all()  # one code version and data: clean (blank)
    runs = summaries_with_config(sweep_copy)
    # weight decay 0.01 against 0, the seed as the unit: on each seed the difference averaged
    # over the noise levels, then a t-test over the 2 seeds
    a = runs[runs.wd == 0.01].set_index(["noise", "seed"]).acc
    b = runs[runs.wd == 0.0].set_index(["noise", "seed"]).acc.reindex(a.index)
    per_seed = (a - b).groupby(level="seed").mean()
    expected = stats.ttest_1samp(per_seed, 0.0)
    row = table[table.factor == "regularization.weight_decay"].iloc[0]
    assert (float(row.level), float(row.baseline)) == (0.01, 0.0)
    assert (row.n, row.test) == (2, "paired t over seeds")
    assert row.mean_diff == pytest.approx(per_seed.mean(), abs=1e-12)
    assert row.p == pytest.approx(expected.pvalue, rel=1e-9)
    interval = expected.confidence_interval(0.95)
    assert (row.ci_low, row.ci_high) == pytest.approx((interval.low, interval.high), rel=1e-9)
    # Holm over every comparison of the report (2 factor levels + 3 heatmap cells)
    assert len(table) == 5 and table.p.notna().all()
    m, order = len(table), table.p.sort_values().index
    adjusted = (m - pd.Series(range(m), index=order)) * table.p[order]
    assert table.p_holm.tolist() == pytest.approx(
        adjusted.cummax().clip(upper=1).reindex(table.index).tolist()
    )
    for r in table.itertuples():
        expected_verdict = ("undecided" if r.p_holm >= 0.05
                            else "higher" if r.mean_diff > 0 else "lower")  # fmt: skip
        assert r.verdict == expected_verdict
    text = (out / "report.md").read_text()
    assert "## Comparisons: test_accuracy against a baseline" in text
    assert "detectable with 80% power" in text


def test_a_real_sweeps_report_has_a_p_for_every_comparison_of_two_or_more_seeds(
    joblib_sweep: Path,
) -> None:
    table = pd.read_csv(joblib_sweep / "report" / "comparisons.csv")
    paired = table[table.n >= 2]  # two seeds in every comparison
    assert len(paired) == 5 and paired.p.notna().all() and paired.p_holm.notna().all()
    assert not paired.verdict.str.startswith("too few").any()


def test_holm_adjusts_step_down_and_keeps_the_order() -> None:
    p = pd.Series([0.01, 0.04, 0.03, 0.005])
    assert holm(p).tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_a_baseline_can_be_chosen_and_unpairable_runs_use_welch(
    sweep_copy: Path, tmp_path: Path
) -> None:
    out = tmp_path / "r"
    assert main([str(sweep_copy), "--baseline", "regularization.noise_std=0.3", "--detect",
                 "0.002", "--out", str(out)]) == 0  # fmt: skip
    table = pd.read_csv(out / "comparisons.csv")
    noise = table[table.factor == "regularization.noise_std"]
    assert set(noise.baseline.astype(float)) == {0.3} and set(noise.level.astype(float)) == {0.0}
    assert "seeds to detect 0.002" in (out / "report.md").read_text()
    with pytest.raises(ReportError, match=r"unknown key 'noise_std': did you mean regularization"):
        write_report(Request([sweep_copy], out=tmp_path / "x", baselines={"noise_std": "0.3"}))
    # Give one level's runs seeds the others lack: nothing pairs, so Welch's test is used.
    for path in sweep_copy.glob("*weight_decay=0.01*/summary.json"):
        summary = json.loads(path.read_text())
        path.write_text(json.dumps({**summary, "seed": summary["seed"] + 10}))
    write_report(Request([sweep_copy], out=tmp_path / "w"))
    table = pd.read_csv(tmp_path / "w" / "comparisons.csv")
    row = table[table.factor == "regularization.weight_decay"].iloc[0]
    assert row.test.startswith("Welch") and row.n == 4  # 2 seeds at each level
    runs = summaries_with_config(sweep_copy)
    seed_means = [runs[runs.wd == wd].groupby("seed").acc.mean() for wd in (0.01, 0.0)]
    expected = stats.ttest_ind(*seed_means, equal_var=False)
    assert row.p == pytest.approx(expected.pvalue, rel=1e-9)
    assert "no seed with both levels" in (tmp_path / "w" / "report.md").read_text()


@pytest.fixture(scope="module")
def three_key_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    def sweep(folder: Path) -> None:
        args = ["epochs=1", "hydra/launcher=joblib", "optimizer.lr=0.01,0.02", *GRID]
        result = run_sweep(folder, *args, "regularization.noise_std=0,0.3")
        assert result.returncode == 0, result.stderr[-3000:]

    return made_once(tmp_path_factory, "three-key-sweep", sweep)


@pytest.mark.slow
def test_a_three_key_sweep_gets_one_table_per_value_of_the_third_key(three_key_sweep: Path) -> None:
    text = (three_key_sweep / "report" / "report.md").read_text()
    assert "swept keys: optimizer.lr, regularization.weight_decay, regularization.noise_std" in text
    for noise in ("0.0", "0.3"):  # rows x cols are the first two keys; one table per noise
        assert f"a cell's runs differ only in seed; with regularization.noise_std={noise}" in text
    grid = text[text.index("optimizer.lr x regularization.weight_decay") :]
    # every cell of the per-lr tables holds the 2 seeds of one configuration
    first_table = grid[: grid.index("by optimizer.lr")]
    assert set(re.findall(r"\((\d+)\)", first_table)) == {"2"}, first_table
    pooled = "pooled over regularization.weight_decay, regularization.noise_std and seeds"
    assert f"{pooled} (n counts runs)" in text


@pytest.mark.slow
def test_each_configuration_is_compared_with_the_baseline_configuration_on_the_seeds(
    three_key_sweep: Path, tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep"
    shutil.copytree(three_key_sweep, sweep, ignore=shutil.ignore_patterns("report"))
    control_accuracies(sweep, seed=1)
    out = write_report(Request([sweep], out=tmp_path / "r"))
    table = pd.read_csv(out / "comparisons.csv")
    configurations = table[table.factor == "configuration"]
    # lr x weight decay x noise: 8 configurations, each but the baseline compared with it
    assert len(configurations) == 7 and set(configurations.baseline) == {"0.01, 0.0, 0.0"}
    runs = summaries_with_config(sweep)

    def accuracy(lr: float, wd: float, noise: float) -> pd.Series:
        chosen = runs[(runs.lr == lr) & (runs.wd == wd) & (runs.noise == noise)]
        return chosen.set_index("seed").acc.sort_index()

    a, b = accuracy(0.02, 0.01, 0.3), accuracy(0.01, 0.0, 0.0)
    row = configurations[configurations.level == "0.02, 0.01, 0.3"].iloc[0]
    assert (row.n, row.test) == (2, "paired t over seeds")
    assert row.mean_diff == pytest.approx((a - b).mean(), abs=1e-12)
    assert row.p == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-9)  # per seed
    # one Holm family: the per-key levels (3) and the configurations (7)
    assert len(table) == 10 and (table.p_holm >= table.p).all()
    text = (out / "report.md").read_text()
    section = text[text.index("## Each configuration against the baseline configuration") :]
    assert "| optimizer.lr | regularization.weight_decay | regularization.noise_std |" in (
        re.sub(r" +", " ", section)
    )


def test_a_boolean_baseline_is_given_as_on_the_command_line(tmp_path: Path) -> None:
    runs = pd.DataFrame({"tta": [True, False, True, False], "seed": [0, 0, 1, 1]})
    request = Request([tmp_path], baselines={"tta": "true"})
    assert choose_baselines(runs, ["tta"], request) == {"tta": True}


def _cut_last_row(path: Path) -> None:
    text = path.read_text().rstrip("\n")
    path.write_text(text[: len(text) - 6])  # e.g. `2,val,...,0.6575` -> `2,val,...,0.`


def test_inconsistent_files_are_named_and_left_out_without_a_traceback(
    sweep_copy: Path, tmp_path: Path
) -> None:
    cut, short, empty, lacking, *_ = sorted(p.parent for p in sweep_copy.glob("*/summary.json"))
    _cut_last_row(cut / "metrics.csv")  # the test row, cut mid-line
    metrics = pd.read_csv(short / "metrics.csv")
    metrics[metrics.split == "train"].to_csv(short / "metrics.csv", index=False)  # no val row
    (empty / "summary.json").write_text("{}")
    summary = json.loads((lacking / "summary.json").read_text())
    del summary["test_accuracy"]
    (lacking / "summary.json").write_text(json.dumps(summary))
    result = subprocess.run(
        [sys.executable, "analysis/report.py", str(sweep_copy), "--metric", "val_accuracy",
         "--out", str(tmp_path / "r")], capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    text = (tmp_path / "r" / "report.md").read_text()
    section = text[text.index("## Inconsistent runs") :]
    assert cut.name in section and "cut short" in section
    assert short.name in section and "lacks the val rows of epoch(s) [1]" in section
    assert lacking.name in section and "lacks test_accuracy" in section
    assert empty.name in text and "summary.json has no status" in text
    runs = pd.read_csv(tmp_path / "r" / "runs.csv").set_index("run")
    assert pd.isna(runs.loc[short.name, "val_accuracy"])  # left out of the statistics
    assert pd.isna(runs.loc[lacking.name, "val_accuracy"])


def test_an_epoch_window_some_runs_do_not_cover_says_so(sweep_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    assert (
        main([str(sweep_copy), "--metric", "val_accuracy", "--epochs", "1:2", "--out", str(out)])
        == 2
    )
    metrics = sweep_copy / sorted(p.parent.name for p in sweep_copy.glob("*/summary.json"))[0]
    frame = pd.read_csv(metrics / "metrics.csv")
    extra = frame[frame.split == "val"].assign(epoch=2)
    pd.concat([frame, extra]).to_csv(metrics / "metrics.csv", index=False)
    summary = json.loads((metrics / "summary.json").read_text())
    (metrics / "summary.json").write_text(json.dumps({**summary, "epochs_completed": 2}))
    assert (
        main([str(sweep_copy), "--metric", "val_accuracy", "--epochs", "1:2", "--out", str(out)])
        == 0
    )
    text = (out / "report.md").read_text()
    assert "7 completed run(s) do not reach epoch 2, so the window 1:2 leaves them out" in text


@pytest.mark.slow
def test_an_optuna_search_reports_every_key_it_searched(tmp_path: Path) -> None:
    result = run_sweep(
        tmp_path, "epochs=1", "hparams_search=fashion_optuna", "hydra.sweeper.n_trials=3"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = (tmp_path / "report" / "report.md").read_text()
    keys = [
        "model.dropout",
        "optimizer.lr",
        "regularization.weight_decay",
        "regularization.noise_std",
    ]
    overview = text.split("\n## ")[0]
    assert all(key in overview for key in keys), overview
    best = text[text.index("## Best configuration") :].splitlines()[2]
    assert all(f"{key}=" in best for key in keys), best
    assert "- 3 jobs" not in text  # finished: no progress section


def test_a_stopped_sweep_says_where_it_stands(sweep_copy: Path, tmp_path: Path) -> None:
    gone = sorted(p.parent for p in sweep_copy.glob("*/summary.json"))
    shutil.rmtree(gone[0])
    shutil.rmtree(gone[1])
    (gone[2] / "summary.json").unlink()  # killed
    with lock_holder(gone[3]):
        (gone[3] / "summary.json").unlink()
        text = (write_report(Request([sweep_copy], out=tmp_path / "r")) / "report.md").read_text()
    assert "- 8 jobs: 4 completed, 1 running, 0 failed, 1 stopped, 2 not started" in text
    assert re.search(r"about \d+ min left at the pace of the finished runs", text)


@pytest.mark.service
@pytest.mark.slow
def test_report_html_fits_1280_px_in_chromium_offline_with_every_image_and_sortable_tables(
    joblib_sweep: Path, tmp_path: Path
) -> None:
    page = joblib_sweep / "report" / "report.html"
    html = page.read_text()
    # Nothing fetched: images inline, no script or style from a file or a host; the only
    # links lead to sections of the page and to the run folders beside the report.
    assert not re.search(r"src=\"(?!data:)|<link ", html)
    hrefs = re.findall(r'href="([^"]+)"', html)
    assert hrefs and all(h.startswith("#") or (page.parent / h).is_dir() for h in hrefs)
    seen = seen_in_chromium(page, tmp_path)
    assert_reads_at_1280(seen)
    assert len(seen["images"]) == 3 and seen["tables"] >= 4
    # The README's picture is made by docs/screenshots.py: its screenshot, here.
    screenshot = runpy.run_path(str(ROOT / "docs" / "screenshots.py"))["screenshot"]
    shot = screenshot(page, tmp_path / "page.png", width=1280, height=2400)
    from PIL import Image

    with Image.open(shot) as image:
        low, high = image.convert("L").getextrema()
    assert high - low > 100  # text and figures, not a blank page


def test_report_curves_of_one_epoch_runs_are_points_on_whole_epochs(joblib_sweep: Path) -> None:
    from analysis import plots
    from analysis.collect import load_epochs, load_runs

    runs = load_runs([joblib_sweep])
    val = load_epochs(runs).query("split == 'val'").rename(columns={"accuracy": "val_accuracy"})
    fig = plots.learning_curves(val, "val_accuracy", None, joblib_sweep / "report" / "c.png")
    (ax,) = fig.axes
    assert list(ax.get_xticks()) == [1]
    assert [line.get_marker() for line in ax.lines if len(line.get_xdata())] == ["o"]


def test_a_sweep_rerun_writes_its_report_with_the_options_the_user_gave_it(
    sweep_copy: Path, caplog
) -> None:
    from omegaconf import OmegaConf

    from analysis.sweep_end import SweepEnd

    assert main([str(sweep_copy), "--baseline", "regularization.noise_std=0.3"]) == 0
    (sweep_copy / "report" / "comparisons.csv").unlink()
    with caplog.at_level("INFO"):  # the end of a rerun of the sweep: every job skipped
        SweepEnd().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_copy)}}}))
    table = pd.read_csv(sweep_copy / "report" / "comparisons.csv")
    noise = table[table.factor == "regularization.noise_std"]
    assert set(noise.baseline.astype(float)) == {0.3}  # not the default, 0.0
    assert "with the options of its last report: --baseline regularization.noise_std=0.3" in (
        caplog.text
    )
