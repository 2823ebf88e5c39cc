"""analysis/: collect survives real sweep folders; report's numbers are the ones on disk."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from analysis.collect import CollectError, load_epochs, load_runs, runtime_columns
from analysis.page import Estimate
from analysis.report import Request, main, write_report
from analysis.stats import describe
from tests.conftest import ROOT


def test_collect_gives_one_row_per_run_with_flat_config_and_summary(joblib_sweep: Path) -> None:
    runs = load_runs([joblib_sweep])
    assert len(runs) == 8 and set(runs["status"]) == {"completed"}
    for column in ("model.name", "regularization.weight_decay", "seed", "test_accuracy", "params"):
        assert column in runs.columns
    epochs = load_epochs(runs)
    assert len(epochs) == 8 * 3 and set(epochs["split"]) == {"train", "val", "test"}


def test_collect_survives_a_killed_run_and_a_broken_summary(sweep_copy: Path) -> None:
    killed, broken, *_ = sorted(p.parent for p in sweep_copy.glob("*/summary.json"))
    (killed / "summary.json").unlink()
    (broken / "summary.json").write_text('{"status": "compl')
    runs = load_runs([sweep_copy]).set_index("run")
    assert runs.loc[killed.name, "status"] == "incomplete"
    assert runs.loc[killed.name, "epochs_completed"] == 1
    assert runs.loc[broken.name, "status"] == "unreadable"
    assert "summary.json unreadable" in runs.loc[broken.name, "error"]
    report = (write_report(Request([sweep_copy])) / "report.md").read_text()
    assert "6 completed" in report and "1 incomplete" in report and "1 unreadable" in report


def test_collect_on_an_empty_folder_says_what_it_expected(tmp_path: Path) -> None:
    with pytest.raises(CollectError, match="no run folders under"):
        load_runs([tmp_path])
    result = subprocess.run(
        [sys.executable, str(ROOT / "analysis" / "report.py"), str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1


def test_epoch_window_averages_the_per_epoch_metric(sweep_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "window"
    write_report(Request([sweep_copy], metric="val_accuracy", window=(1, 1), out=out))
    runs = pd.read_csv(out / "runs.csv")
    for run, value in zip(runs["run"], runs["val_accuracy[1:1]"], strict=True):
        metrics = pd.read_csv(sweep_copy / run / "metrics.csv")
        expected = metrics[(metrics.split == "val") & metrics.epoch.between(1, 1)].accuracy.mean()
        assert value == pytest.approx(expected)
    assert "val_accuracy[1:1]" in (out / "report.md").read_text()


def test_rows_and_cols_accept_a_group_name_and_two_sweeps_compare(
    joblib_sweep: Path, sweep_copy: Path, tmp_path: Path
) -> None:
    out = tmp_path / "both"
    status = main(
        [str(joblib_sweep), str(sweep_copy), "--rows", "model", "--cols",
         "regularization.noise_std", "--out", str(out)]
    )  # fmt: skip
    assert status == 0
    text = (out / "report.md").read_text()
    assert "model x regularization.noise_std" in text  # the group's column: its option
    assert "runs: 16" in text
    summary = pd.read_csv(out / "summary.csv")
    # a configuration pools its runs of both sweeps; pairs stay within a sweep, and a seed's
    # runs in both sweeps count once: the seed is the unit (2 seeds, not 8 pairs)
    assert summary["n"].max() == 4
    compared = pd.read_csv(out / "comparisons.csv")
    assert (compared.loc[compared["factor"] == "regularization.noise_std", "n"] == 2).all()


def test_unknown_metric_lists_the_valid_ones(joblib_sweep: Path, tmp_path: Path, capsys) -> None:
    assert main([str(joblib_sweep), "--metric", "accuracy", "--out", str(tmp_path)]) == 2
    assert "val_accuracy" in capsys.readouterr().err


@pytest.mark.parametrize("window", ["20-50", "50:20", "0:3"])
def test_a_bad_epoch_window_is_refused_with_the_form_to_use(
    joblib_sweep: Path, capsys, window
) -> None:
    assert main([str(joblib_sweep), "--epochs", window]) == 2
    assert "--epochs" in capsys.readouterr().err


def test_report_help_describes_the_command() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "analysis" / "report.py"), "--help"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and "--epochs" in result.stdout and "--metric" in result.stdout


def test_describe_shows_no_std_for_a_single_run() -> None:
    stats = describe(pd.Series([0.9]))
    assert stats["n"] == 1 and pd.isna(stats["std"]) and pd.isna(stats["ci95_low"])
    assert str(Estimate(stats["mean"], stats["std"], stats["n"], percent=True)) == "90.00 % (1)"
    two = describe(pd.Series([0.8, 0.9]))
    assert two["std"] == pytest.approx(0.0707106781, rel=1e-8)


def test_summary_json_from_disk_matches_runs_csv(joblib_sweep: Path) -> None:
    runs = pd.read_csv(joblib_sweep / "report" / "runs.csv")
    for row in runs.itertuples():
        summary = json.loads((joblib_sweep / row.run / "summary.json").read_text())
        assert row.test_accuracy == summary["test_accuracy"]


def test_runtime_keys_come_from_the_runs_hydra_config_and_are_never_factors(
    sweep_copy: Path, tmp_path: Path
) -> None:
    from sweeplab.config import runtime_keys

    runs = load_runs([sweep_copy])
    assert set(runtime_columns(runs)) >= set(runtime_keys())  # as Hydra saved them
    first = sorted(sweep_copy.glob("*/.hydra/config.yaml"))[0]
    first.write_text(first.read_text().replace("root: data", "root: /elsewhere/data"))
    assert load_runs([sweep_copy])["dataset.root"].nunique() == 2
    text = (write_report(Request([sweep_copy], out=tmp_path / "r")) / "report.md").read_text()
    assert "swept keys: regularization.weight_decay, regularization.noise_std;" in text


def test_an_input_size_left_to_the_model_is_read_from_the_summary(joblib_sweep: Path) -> None:
    runs = load_runs([joblib_sweep])
    config = yaml.safe_load(next(joblib_sweep.glob("*/.hydra/config.yaml")).read_text())
    assert config["input_size"] is None  # the run chose it: the dataset's 28
    assert set(runs["input_size"]) == {28}


def test_the_notebook_example_of_the_manual_runs_on_a_real_sweep(joblib_sweep: Path) -> None:
    """docs/reports.md's "In a notebook" block, on a real sweep instead of multirun/wd_vs_noise:
    the same context the report writes comparisons.csv from."""
    import matplotlib

    matplotlib.use("Agg")
    page = (ROOT / "docs" / "reports.md").read_text()
    section = page[page.index("## In a notebook") :]
    code = section[section.index("```python\n") + 10 : section.index("```\n", 10)]
    namespace: dict = {}
    exec(code.replace("multirun/wd_vs_noise", str(joblib_sweep)), namespace)
    sweeps, per_key = namespace["sweeps"], namespace["per_key"]
    assert sweeps.factors == ["regularization.weight_decay", "regularization.noise_std"]
    assert len(namespace["runs"]) == 8 and set(per_key["n"]) == {2}  # 8 runs, 2 seeds
    written = pd.read_csv(joblib_sweep / "report" / "comparisons.csv")
    assert per_key["mean_diff"].tolist() == pytest.approx(
        written.query("factor != 'configuration'")["mean_diff"].tolist()
    )
