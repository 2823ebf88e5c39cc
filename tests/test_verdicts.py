"""Verdicts with the seed as the unit, on real run folders: "In short" says what the table
says, two single runs get no verdict, equivalence on a sweep edited to a known truth, and the
cells an unbalanced sweep leaves out are named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from scipy import stats

from analysis.page import Difference
from analysis.report import main
from tests.conftest import QUICK, completed_cli_run


def section(text: str, heading: str) -> str:
    """The body of a report.md section, up to the next heading."""
    return text[text.index(f"## {heading}") :].split("\n## ")[0]


def report(sweeps: list[Path], out: Path, *args: str) -> tuple[pd.DataFrame, str]:
    assert main([*(str(s) for s in sweeps), "--out", str(out), *args]) == 0
    return pd.read_csv(out / "comparisons.csv"), (out / "report.md").read_text()


def set_accuracies(sweep: Path, accuracy) -> pd.DataFrame:
    """Write `accuracy(wd, noise, seed)` as every run's test accuracy; the runs as a frame."""
    rows = []
    for path in sorted(sweep.glob("*/summary.json")):
        config = yaml.safe_load((path.parent / ".hydra" / "config.yaml").read_text())
        wd, noise = (config["regularization"][k] for k in ("weight_decay", "noise_std"))
        value = accuracy(wd, noise, config["seed"])
        path.write_text(json.dumps({**json.loads(path.read_text()), "test_accuracy": value}))
        rows.append({"wd": wd, "noise": noise, "seed": config["seed"], "acc": value})
    return pd.DataFrame(rows)


def test_in_short_says_what_the_table_says_on_a_real_sweep(joblib_sweep: Path) -> None:
    table = pd.read_csv(joblib_sweep / "report" / "comparisons.csv")
    short = section((joblib_sweep / "report" / "report.md").read_text(), "In short")
    per_key = table[table.factor != "configuration"]
    lines = [line for line in short.splitlines() if line.startswith("- ")]
    assert len(lines) == len(per_key) == 2  # one line per level of each swept key
    for row, line in zip(per_key.itertuples(), lines, strict=True):
        assert line.startswith(f"- `{row.factor}=")
        assert f"**{row.verdict}**" in line and f"({row.n} seeds, p_holm" in line
        assert str(Difference(row.mean_diff, row.ci_low, row.ci_high, True)) in line
        assert row.n == 2  # the sweep's two seeds, not its four pairs of runs


def test_two_single_runs_get_too_few_seeds_and_no_verdict(quick_run: Path, tmp_path: Path) -> None:
    noisy = completed_cli_run(tmp_path / "noisy", *QUICK, "regularization.noise_std=0.3")
    table, text = report([quick_run, noisy], tmp_path / "r")
    row = table[table.factor == "regularization.noise_std"].iloc[0]
    assert (row.n, row.verdict) == (1, "too few seeds (1)") and pd.isna(row.p)
    short = section(text, "In short")
    assert "`regularization.noise_std=0.3`: **too few seeds (1)**" in short
    assert "its one seed differs by" in short and "at least two seeds" in short
    for word in ("no detectable difference", "undecided", "equivalent", "higher", "lower"):
        assert word not in short


def test_equivalence_is_declared_where_a_sweep_is_known_to_lie_within_d(
    sweep_copy: Path, tmp_path: Path
) -> None:
    """Weight decay moves accuracy by +0.002 and -0.001 points on the two seeds (truth: within
    ±0.5 points); noise 0.3 costs 5 points on every seed."""
    tiny = {0: 0.00002, 1: -0.00001}

    def accuracy(wd: float, noise: float, seed: int) -> float:
        return 0.85 + 0.01 * seed - (0.05 if noise else 0) + (tiny[seed] if wd else 0)

    runs = set_accuracies(sweep_copy, accuracy)
    table, text = report([sweep_copy], tmp_path / "r", "--detect", "0.005")
    wd = table[table.factor == "regularization.weight_decay"].iloc[0]
    assert wd.verdict == "equivalent (within ±0.005)" and wd.n == 2
    a = runs[runs.wd > 0].set_index(["seed", "noise"]).acc
    per_seed = (a - runs[runs.wd == 0].set_index(["seed", "noise"]).acc).groupby("seed").mean()
    tost = max(
        stats.ttest_1samp(per_seed, -0.005, alternative="greater").pvalue,
        stats.ttest_1samp(per_seed, 0.005, alternative="less").pvalue,
    )
    assert wd.p_equiv == pytest.approx(tost, rel=1e-9)
    # one Holm family of 5 comparisons x 2 hypotheses, at most 5 true: no step divides by more
    assert wd.p_equiv_holm <= 5 * wd.p_equiv + 1e-15 and wd.p_equiv_holm < 0.05
    noise = table[table.factor == "regularization.noise_std"].iloc[0]
    assert noise.verdict == "lower" and noise.mean_diff == pytest.approx(-0.05)
    assert "`regularization.weight_decay=0.01`: **equivalent (within ±0.005)**" in text
    # A margin far inside the seeds' spread decides nothing, and says what would.
    table, text = report([sweep_copy], tmp_path / "tight", "--detect", "0.000001")
    wd = table[table.factor == "regularization.weight_decay"].iloc[0]
    assert wd.verdict == "undecided" and wd.seeds_to_decide > 2
    assert f"about {int(wd.seeds_to_decide)} seeds would decide it" in section(text, "In short")


def test_an_unbalanced_sweep_compares_the_matched_cells_and_names_the_rest(
    sweep_copy: Path, tmp_path: Path
) -> None:
    runs = set_accuracies(sweep_copy, lambda wd, noise, seed: 0.8 + wd + noise / 10 + seed / 100)
    missing = runs[(runs.wd > 0) & (runs.noise > 0) & (runs.seed == 1)]
    assert len(missing) == 1
    for path in sweep_copy.glob("*/.hydra/config.yaml"):
        config = yaml.safe_load(path.read_text())
        reg = config["regularization"]
        if reg["weight_decay"] > 0 and reg["noise_std"] > 0 and config["seed"] == 1:
            shutil.rmtree(path.parent.parent)
    table, text = report([sweep_copy], tmp_path / "r")
    wd = table[table.factor == "regularization.weight_decay"].iloc[0]
    assert wd.n == 2  # seed 1 keeps its one matched cell (noise 0)
    assert wd.left_out == "regularization.weight_decay=0.0, regularization.noise_std=0.3 (seed 1)"
    assert "Left out of a comparison" in text and wd.left_out in text
