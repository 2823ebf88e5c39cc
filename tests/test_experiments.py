"""Every named experiment in conf/experiment/ runs end to end: one seed, one epoch, tiny data."""

from __future__ import annotations

from math import prod
from pathlib import Path

import pandas as pd
import pytest
import yaml

from analysis.collect import load_runs
from tests.conftest import CONF, run_sweep

pytestmark = pytest.mark.slow  # each experiment is a real multirun
EXPERIMENTS = sorted(path.stem for path in (CONF / "experiment").glob("*.yaml"))


def swept_axes(name: str) -> dict[str, list[str]]:
    """The experiment's sweep axes but the seed: key -> its values as written."""
    hydra = yaml.safe_load((CONF / "experiment" / f"{name}.yaml").read_text())["hydra"]
    params = hydra.get("sweeper", {}).get("params", {})
    return {key: str(values).split(",") for key, values in params.items() if key != "seed"}


def expected_jobs(name: str) -> int:
    """Jobs in the experiment's grid with one seed: the product of its other axes' lengths."""
    return prod(len(values) for values in swept_axes(name).values())


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
    text = (sweep / "report" / "report.md").read_text()
    assert f"- runs: {jobs} ({jobs} completed)" in text
    # the report's factors are the sweep's axes, each group's levels named as written, and
    # every level of a group (a preset) lists the other keys it changes
    axes = {key: values for key, values in swept_axes(name).items() if len(values) > 1}
    (line,) = [line for line in text.splitlines() if line.startswith("- swept keys: ")]
    shown = line.removeprefix("- swept keys: ").split(";")[0]
    assert (set() if shown == "none" else set(shown.split(", "))) == set(axes)
    compared = pd.read_csv(sweep / "report" / "comparisons.csv")
    assert set(compared["factor"]) - {"configuration"} <= set(axes)
    for key, values in axes.items():
        if (CONF / key).is_dir():  # a config group
            assert set(runs[key]) == set(values)
            for level in values[1:]:
                assert f"- {key}: {values[0]} → {level} also changes " in text
