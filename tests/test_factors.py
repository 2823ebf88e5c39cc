"""A report credits each difference to what the user swept: factors are the keys and config
groups of the sweep's overrides, a preset's other keys are listed beside it, and config
differences that no swept key explains are named at the top and never credited."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from analysis.report import main
from tests.conftest import run_sweep


def report_of(out: Path, *sweeps: Path) -> str:
    assert main([*map(str, sweeps), "--out", str(out)]) == 0
    return (out / "report.md").read_text()


@pytest.mark.slow
def test_two_presets_are_one_factor_named_as_written_with_the_keys_they_change(
    tmp_path: Path,
) -> None:
    result = run_sweep(tmp_path, "model=lenet5,lenet5_bn", "seed=0,1", "epochs=1")
    assert result.returncode == 0, result.stderr[-3000:]
    text = (tmp_path / "report" / "report.md").read_text()
    assert "- swept keys: model; seeds (replicates): [0, 1]" in text
    (line,) = [line for line in text.splitlines() if line.startswith("- model: lenet5 → lenet5_bn")]
    for leaf in ("model.batch_norm (False → True)", "model.pool_first (False → True)",
                 "model.dropout (0.1 → 0.0)"):  # fmt: skip
        assert leaf in line
    compared = pd.read_csv(tmp_path / "report" / "comparisons.csv")
    assert set(compared["factor"]) == {"model"} and set(compared["level"]) == {"lenet5_bn"}
    (folder,) = [p.parent for p in tmp_path.glob("*model=lenet5_bn*seed=0/summary.json")]
    summary = json.loads((folder / "summary.json").read_text())
    assert (summary["model"], summary["model_family"]) == ("lenet5_bn", "lenet5")
    assert "lenet5_bn (lenet5 family) (61,728 parameters)" in (folder / "run.log").read_text()
    # a leaf the preset sets, asked for as the rows: the same factor, not a second one that
    # would leave no two runs to pair
    out = tmp_path / "by_leaf"
    assert main([str(tmp_path), "--rows", "model.batch_norm", "--out", str(out)]) == 0
    compared = pd.read_csv(out / "comparisons.csv")
    assert set(compared["factor"]) == {"model"}
    assert (compared["test"] == "paired t over seeds").all()


def _set_in_config(sweep: Path, key: str, value: object) -> None:
    """Change one leaf in every run's .hydra/config.yaml, as a changed default would have."""
    section, leaf = key.split(".")
    for path in sweep.glob("*/.hydra/config.yaml"):
        config = yaml.safe_load(path.read_text())
        config[section][leaf] = value
        path.write_text(yaml.safe_dump(config))


def test_a_leaf_no_swept_key_explains_is_named_at_the_top_and_never_credited(
    joblib_sweep: Path, tmp_path: Path
) -> None:
    before, after = tmp_path / "before", tmp_path / "after"
    shutil.copytree(joblib_sweep, before)
    shutil.copytree(joblib_sweep, after)
    config = yaml.safe_load(next(before.glob("*/.hydra/config.yaml")).read_text())
    flips = config["regularization"]["hflip"]
    _set_in_config(after, "regularization.hflip", not flips)  # the default changed between them
    text = report_of(tmp_path / "report", before, after)
    warning = text.split("\n- runs:")[0]
    assert "**Warning:** regularization.hflip differ between runs" in warning
    assert "- swept keys: regularization.weight_decay, regularization.noise_std;" in text
    compared = pd.read_csv(tmp_path / "report" / "comparisons.csv")
    per_key = compared[compared["factor"] != "configuration"]
    assert set(per_key["factor"]) == {"regularization.weight_decay", "regularization.noise_std"}
    # paired only within runs that agree on hflip (2 other levels x 2 sweeps on each seed), and
    # the seed is the unit: the 8 pairs are 2 seeds
    assert (per_key["n"] == 2).all() and per_key["test"].str.startswith("paired").all()


def test_two_sweeps_that_agree_on_every_leaf_pool_without_a_warning(
    joblib_sweep: Path, tmp_path: Path
) -> None:
    again = tmp_path / "again"
    shutil.copytree(joblib_sweep, again, ignore=shutil.ignore_patterns("report"))
    text = report_of(tmp_path / "report", joblib_sweep, again)
    assert "Warning" not in text
    assert "- swept keys: regularization.weight_decay, regularization.noise_std;" in text
    summary = pd.read_csv(tmp_path / "report" / "summary.csv")
    assert (summary["n"] == 4).all()  # a configuration's runs in both sweeps


def test_folders_without_override_files_fall_back_to_inference_and_say_so(
    joblib_sweep: Path, tmp_path: Path
) -> None:
    copied = tmp_path / "copied"
    shutil.copytree(joblib_sweep, copied)
    for path in copied.glob("*/.hydra/overrides.yaml"):
        path.unlink()
    text = report_of(tmp_path / "report", copied)
    assert "- factors: inferred from the config values that differ" in text
    assert "- swept keys: regularization.weight_decay, regularization.noise_std;" in text
    with_files = report_of(tmp_path / "with", joblib_sweep)
    assert "- factors: the keys and config groups the sweep's overrides set" in with_files
