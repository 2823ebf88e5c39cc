"""sweeplab's search sweeper with real Optuna storages and real processes on small subsets:
pruned trials, kill -9 and resume, two workers on one study, reruns, the search report,
confirmation runs, and every bad input answered with one line before any trial."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from hydra_plugins.sweeplab_optuna_sweeper.study import open_storage

from tests.chromium import assert_reads_at_1280, seen_in_chromium
from tests.conftest import QUICK_SWEEP, ROOT, run_sweep

SEARCH = ["hydra/sweeper=sweeplab_optuna", "dataset.subset=1024"]
# A grid whose order is fixed by its seed (not by any accuracy): trial 0 (lr 0.01, batch 64)
# completes, trial 1 (lr 1e-7: near chance after an epoch, far below trial 0) is pruned at
# epoch 1 by the median pruner, trials 2 and 3 (batch 4096 > 1024 training images) fail.
# max_failure_rate=1.0: the search goes on past its failed trials (Hydra's default, 0.0, stops
# at the first).
GRID = [*SEARCH, "hydra.sweeper.sampler.name=grid", "hydra.sweeper.sampler.seed=4",
        "optimizer.lr=choice(0.01,1e-7)", "batch_size=choice(64,4096)", "epochs=3",
        "hydra.sweeper.n_trials=4", "+hydra.sweeper.pruner_args={n_startup_trials:1}",
        "hydra.sweeper.max_failure_rate=1.0", "hydra.sweeper.value_format=.2%",
        "hydra.sweeper.step_name=epoch"]  # fmt: skip


def study_of(sweep: Path, name: str = "sweeplab") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(str(sweep / "study.journal")))


def states(study: optuna.Study) -> dict[int, str]:
    return {t.number: t.state.name for t in study.get_trials(deepcopy=False)}


def summaries(sweep: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/summary.json")}


@pytest.fixture(scope="module")
def grid_search(tmp_path_factory) -> Path:
    sweep = tmp_path_factory.mktemp("grid") / "sweep"
    result = run_sweep(sweep, *GRID)
    assert result.returncode == 1, result.stderr[-3000:]  # two trials failed: listed, exit 1
    assert "2 job(s) failed" in result.stderr
    (sweep.parent / "console.txt").write_text(result.stdout)  # what the user saw
    return sweep


@pytest.mark.slow
@pytest.mark.xdist_group("grid_search")
def test_a_pruned_trial_keeps_its_folder_metrics_and_checkpoints_and_says_when(
    grid_search: Path,
) -> None:
    study = study_of(grid_search)
    assert states(study) == {0: "COMPLETE", 1: "PRUNED", 2: "FAIL", 3: "FAIL"}
    # the console: a line per trial, numbered as the study numbers it, values in percent
    console = (grid_search.parent / "console.txt").read_text()
    first, pruned = study.trials[0], study.trials[1]
    assert f"[1/4] trial 0 completed: value {first.value:.2%} (best so far " in console
    assert f"[2/4] trial 1 pruned at epoch 1: value {pruned.intermediate_values[1]:.2%}" in console
    assert "[3/4] trial 2 failed: " in console
    (pruned,) = [p for p in grid_search.glob("*/summary.json") if "1e-07" in str(p)
                 and "batch_size=64" in str(p)]  # fmt: skip
    summary = json.loads(pruned.read_text())
    assert summary["status"] == "pruned" and summary["epochs_completed"] == 1
    assert "pruned by the median pruner after epoch 1" in summary["error"]
    metrics = pd.read_csv(pruned.parent / "metrics.csv")
    assert list(zip(metrics.epoch, metrics.split, strict=True)) == [(1, "train"), (1, "val")]
    assert (pruned.parent / "checkpoints" / "last.pt").is_file()
    assert summary["test_accuracy"] is None  # a pruned run never looks at the test split


@pytest.mark.slow
def test_a_trial_is_never_pruned_after_its_last_epoch(tmp_path: Path) -> None:
    # The grid with seed 1 runs lr 0.01 first; lr 1e-7, second, ends far below it at epoch 2,
    # the first epoch this median pruner looks at, and also the last: stopping saves nothing.
    late = "+hydra.sweeper.pruner_args={n_startup_trials:1,n_warmup_steps:2}"
    result = run_sweep(tmp_path, *SEARCH, "hydra.sweeper.sampler.name=grid", late,
                       "hydra.sweeper.sampler.seed=1", "optimizer.lr=choice(0.01,1e-7)",
                       "epochs=2", "hydra.sweeper.n_trials=2")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    study = study_of(tmp_path)
    assert [t.params["optimizer.lr"] for t in study.trials] == [0.01, 1e-7]
    assert states(study) == {0: "COMPLETE", 1: "COMPLETE"}
    assert study.trials[1].intermediate_values[2] < study.trials[0].intermediate_values[2]
    (slow,) = [s for name, s in summaries(tmp_path).items() if "lr=1e-07" in name]
    assert slow["status"] == "completed" and slow["test_accuracy"] is not None


@pytest.mark.slow
@pytest.mark.xdist_group("grid_search")
def test_the_search_report_counts_trials_and_lists_pruned_runs_out_of_the_statistics(
    grid_search: Path,
) -> None:
    text = (grid_search / "report" / "report.md").read_text()
    assert "- 4 trials: 1 completed, 1 pruned, 2 failed, 0 running" in text
    # the overview's metric is the tables', and it says the search chose on its objective
    assert "the search chose on its objective (below), never on this metric" in text
    # the search first; no level comparisons of one-seed trials ("too few seeds" rows)
    assert text.index("## Search: study") < text.index("## Per configuration")
    assert "too few seeds" not in text
    # every trial, best first, each linked to its folder (the failed ones too)
    every = text[text.index("## Every trial") :].split("\n## ")[0]
    links = re.findall(r"\[([^\]]+)\]\(([^)]+)\)", every)
    assert len(links) == 4
    assert all((grid_search / "report" / href).is_dir() for _, href in links)
    assert re.search(r"\| 1 \| pruned \| [\d.]+ % \| 1 \|", every)  # its value at epoch 1
    assert (
        "(search_history.png)" in text and (grid_search / "report" / "search_history.png").exists()
    )
    runs = pd.read_csv(grid_search / "report" / "runs.csv")
    assert set(runs.status) == {"completed", "pruned", "failed"}
    assert "- runs: 4 (1 completed, 2 failed, 1 pruned)" in text
    best = int(re.search(r"best trial: (\d+)\*\*", text).group(1))
    assert best == study_of(grid_search).best_trial.number == 0  # Optuna's own reader agrees


@pytest.mark.service
@pytest.mark.slow
@pytest.mark.xdist_group("grid_search")
def test_a_search_report_leads_with_the_search_and_fits_1280_px_in_chromium(
    grid_search: Path, tmp_path: Path
) -> None:
    seen = seen_in_chromium(grid_search / "report" / "report.html", tmp_path)
    assert_reads_at_1280(seen)
    contents = seen["contents"]  # the search before the tables of configurations
    assert contents.index("#search-study-sweeplab") < contents.index("#per-configuration")
    assert "#every-trial" in contents


@pytest.mark.slow
@pytest.mark.xdist_group("grid_search")
def test_the_same_command_again_runs_nothing_and_a_grid_never_runs_past_its_size(
    grid_search: Path, tmp_path: Path
) -> None:
    import shutil

    sweep = tmp_path / "sweep"
    shutil.copytree(grid_search, sweep)
    before = {name: (sweep / name / "summary.json").stat().st_mtime_ns for name in summaries(sweep)}
    planned = run_sweep(sweep, *GRID, "dry_run=true")
    assert planned.stdout.strip() == (
        f"sweeplab: search 'sweeplab' in {sweep}: 4 of 4 trials exist (1 complete, 1 pruned, "
        "2 fail); 0 to run"
    )
    again = run_sweep(sweep, *GRID)
    assert not re.search(r"trial \d+/4: ", again.stdout)  # n_trials reached: no trial at all
    assert len(study_of(sweep).trials) == 4
    more = run_sweep(sweep, *[a for a in GRID if "n_trials" not in a], "hydra.sweeper.n_trials=6")
    assert "the grid holds 4 configurations: running 4 trials, not n_trials=6" in more.stderr
    assert len(study_of(sweep).trials) == 4 and not re.search(r"trial \d+/4: ", more.stdout)
    for name, mtime in before.items():  # completed, pruned and failed folders untouched
        assert (sweep / name / "summary.json").stat().st_mtime_ns == mtime


TPE = [*SEARCH, "optimizer.lr=tag(log,interval(0.001,0.03))",
       "regularization.noise_std=interval(0,0.3)", "hydra.sweeper.pruner=none"]  # fmt: skip


@pytest.mark.slow
def test_kill_9_mid_search_then_the_same_command_finishes_exactly_n_trials(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    args = [*TPE, "dataset.subset=8192", "batch_size=64", "epochs=3", "hydra.sweeper.n_trials=3"]
    command = [sys.executable, str(ROOT / "run.py"), "-m", *QUICK_SWEEP, *args,
               f"hydra.sweep.dir={sweep}"]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while len(list(sweep.glob("*/checkpoints/last.pt"))) < 2:  # the second trial is under way
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    cut_off = [n for n, s in states(study_of(sweep)).items() if s == "RUNNING"]
    assert cut_off == [1]
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    output = again.stdout + again.stderr
    assert "trial 1 was cut off; launching it again" in output and "resuming" in output
    assert states(study_of(sweep)) == {0: "COMPLETE", 1: "COMPLETE", 2: "COMPLETE"}
    assert len(summaries(sweep)) == 3  # one folder per trial, the cut-off one resumed in place
    hydra = [yaml.safe_load((p.parent / ".hydra" / "hydra.yaml").read_text())["hydra"]
             for p in sweep.glob("*/summary.json")]  # fmt: skip
    numbers = [h["job"]["num"] for h in hydra]
    assert sorted(numbers) == [0, 1, 2]  # job numbers are the trials' numbers


@pytest.mark.slow
def test_two_commands_on_one_sweep_folder_are_two_workers_of_one_study(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    # seeded: each worker must still draw its own trials, not the other's
    args = [*TPE, "dataset.subset=4096", "epochs=2", "hydra.sweeper.n_trials=6",
            "hydra.sweeper.sampler.seed=0"]  # fmt: skip
    command = [sys.executable, str(ROOT / "run.py"), "-m", *QUICK_SWEEP, *args,
               f"hydra.sweep.dir={sweep}"]  # fmt: skip
    workers = [
        subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True),
        subprocess.Popen([*command, "hydra/launcher=joblib", "hydra.sweeper.n_jobs=2"], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
    ]  # fmt: skip
    outputs = [worker.communicate(timeout=600) for worker in workers]
    assert [w.returncode for w in workers] == [0, 0], [o[1][-2000:] for o in outputs]
    study = study_of(sweep)
    assert sorted(states(study)) == list(range(6))  # exactly n_trials, no number twice
    assert set(states(study).values()) == {"COMPLETE"}
    assert len(summaries(sweep)) == 6  # six folders: no two trials drew the same values
    launched = [re.findall(r"\[(\d+)/6\] trial \d+ completed", out + err) for out, err in outputs]
    assert sorted(int(n) - 1 for numbers in launched for n in numbers) == list(range(6))


@pytest.mark.slow
def test_confirmation_runs_the_best_configurations_on_new_seeds_and_compares_them(
    tmp_path: Path,
) -> None:
    sweep = tmp_path / "sweep"
    args = [*TPE, "epochs=1", "hydra.sweeper.n_trials=3", "hydra.sweeper.confirm=2",
            "hydra.sweeper.confirm_seeds=2"]  # fmt: skip
    result = run_sweep(sweep, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = summaries(sweep)
    assert len(runs) == 3 + 2 * 2
    env = [yaml.safe_load((sweep / n / ".hydra" / "hydra.yaml").read_text())["hydra"]["job"]
           ["env_set"] for n in runs]  # fmt: skip
    confirmed = [int(e["SWEEPLAB_OPTUNA_CONFIRMS"]) for e in env if e["SWEEPLAB_OPTUNA_CONFIRMS"]]
    study = study_of(sweep)
    best_two = sorted(study.trials, key=lambda t: t.value, reverse=True)[:2]
    assert sorted(confirmed) == sorted([t.number for t in best_two] * 2)
    seeds = {r["seed"] for r in runs.values()}
    assert seeds == {0, 1, 2}
    text = (sweep / "report" / "report.md").read_text()
    assert "## Confirmation: the best configurations on new seeds" in text
    assert "paired on the seed, Holm-adjusted" in text
    # the confirm runs (one configuration on several seeds) leave the searched keys as they are
    assert "- swept keys: optimizer.lr, regularization.noise_std;" in text
    names = re.findall(r"\| (trial \d+: lr [\d.e+-]+, noise_std [\d.e+-]+) ", text)
    assert {int(name.split(":")[0].split()[1]) for name in names} == set(confirmed)


BAD = [
    (["hydra.sweeper.pruner=wilcoxon"], "hydra.sweeper.pruner=wilcoxon: use one of none, median"),
    (["hydra.sweeper.sampler.name=anneal"], "hydra.sweeper.sampler.name=anneal: use one of tpe"),
    (
        ["hydra/sweeper/sampler=motpe"],
        "The 'motpe' sampler was removed in Optuna 4.0. Use "
        "'hydra/sweeper/sampler=tpe' instead. TPESampler now handles multi-objective "
        "optimization. (sweeplab: hydra/sweeper/sampler=nsgaii is",
    ),
    (
        ["hparams_search=fashion_optuna", "hydra.sweeper.direction=[maximize,minimize]"],
        "1 name(s) for 2 objective(s) (hydra.sweeper.direction)",
    ),
    (["hydra.sweeper.max_failure_rate=2"], "max_failure_rate=2.0: give a share between 0.0 and"),
    (
        ["optimizer.learning_rate=interval(0.1,0.2)"],
        "searched key 'optimizer.learning_rate' is not",
    ),
    (["optimizer.lr=interval(0.1,0.01)"], "interval(0.1, 0.01) is empty or inverted"),
    (["optimizer.lr=tag(log,interval(0,0.1))"], "needs bounds > 0"),
    (["hydra.sweeper.storage=/proc/no/such/study.journal"], "cannot be opened"),
    (["hydra.sweeper.n_trials=0"], "hydra.sweeper.n_trials=0: must be at least 1"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[a[0].split("=")[0] for a, _ in BAD])
def test_bad_search_input_is_one_line_before_any_trial(
    tmp_path: Path, args: list[str], message: str
) -> None:
    base = [*SEARCH, "optimizer.lr=interval(0.001,0.01)", "epochs=2"]
    result = run_sweep(tmp_path, *base, *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sweeplab_optuna: error: ")
    assert message in lines[0]
    assert not list(tmp_path.glob("*/summary.json"))


@pytest.mark.slow
@pytest.mark.xdist_group("grid_search")
def test_another_search_on_a_stored_study_stops_with_one_line(grid_search: Path, tmp_path) -> None:
    import shutil

    sweep = tmp_path / "sweep"
    shutil.copytree(grid_search, sweep)
    result = run_sweep(
        sweep, *[a for a in GRID if "choice(64" not in a], "batch_size=choice(32,64)"
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "was made by another search (space.batch_size: 'choice of 64, 4096' there, " in line
    assert "'choice of 32, 64' here)" in line


@pytest.mark.slow
def test_accuracy_against_size_is_a_pareto_front_in_the_sweep_folder_and_the_report(
    tmp_path: Path,
) -> None:
    args = [*SEARCH, "hparams_search=fashion_optuna", "epochs=1", "hydra.sweeper.n_trials=3",
            "model=choice(lenet5,mlp,lenet5_bn)", "objective=[val_accuracy,params]",
            "hydra.sweeper.direction=[maximize,minimize]",
            "hydra/sweeper/sampler=nsgaii"]  # fmt: skip
    result = run_sweep(tmp_path, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    study = study_of(tmp_path, "fashion_optuna")
    assert study.metric_names == ["val_accuracy", "params"]
    params = {t.number: t.values[1] for t in study.trials}
    for name, summary in summaries(tmp_path).items():  # each trial told its run's numbers
        (trial,) = [t for t in study.trials if Path(t.user_attrs["folder"]).name == name]
        assert trial.values == [summary["best_val_accuracy"], summary["params"]]
    front = pd.read_csv(tmp_path / "pareto.csv")
    assert list(front.columns[:3]) == ["trial", "val_accuracy", "params"]
    assert set(front["trial"]) == {t.number for t in study.best_trials} and len(params) == 3
    text = (tmp_path / "report" / "report.md").read_text()
    assert (
        "## Pareto front" in text
        and "objective: val_accuracy (maximize), params (minimize)" in text
    )
    assert (tmp_path / "report" / "search_pareto.png").exists()
