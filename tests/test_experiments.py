"""Every named experiment in conf/experiment/ runs end to end: one seed, one epoch, tiny data."""

from __future__ import annotations

from math import prod
from pathlib import Path

import pytest
import yaml

from analysis.collect import load_runs
from tests.conftest import CONF, run_sweep

pytestmark = pytest.mark.slow  # each experiment is a real multirun
EXPERIMENTS = sorted(path.stem for path in (CONF / "experiment").glob("*.yaml"))


def expected_jobs(name: str) -> int:
    """Jobs in the experiment's grid with one seed: the product of its other axes' lengths."""
    hydra = yaml.safe_load((CONF / "experiment" / f"{name}.yaml").read_text())["hydra"]
    params = hydra.get("sweeper", {}).get("params", {})
    return prod(len(str(values).split(",")) for key, values in params.items() if key != "seed")


def test_the_studies_of_the_model_zoo_issue_are_all_there() -> None:
    studies = {"lenet_improvements", "softmax_in_forward", "lenet_vs_mlp", "wd_vs_noise"}
    assert studies | {"wd_vs_noise_classic", "input_size", "beyond_90"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_runs_one_seed_for_one_epoch(tmp_path: Path, name: str) -> None:
    sweep = tmp_path / name
    result = run_sweep(sweep, f"+experiment={name}", "seed=0", "epochs=1", "dataset.subset=256")
    assert result.returncode == 0, result.stderr[-3000:]
    runs = load_runs([sweep])
    jobs = expected_jobs(name)
    assert len(runs) == jobs >= 1
    assert (runs["status"] == "completed").all(), runs[["run", "status", "error"]]
    assert (runs["epochs_completed"] == 1).all()
    assert f"- runs: {jobs} ({jobs} completed)" in (sweep / "report" / "report.md").read_text()
