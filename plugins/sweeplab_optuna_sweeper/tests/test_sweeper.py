"""The sweeper with Hydra apps of its own (not sweeplab's run.py), run as a user runs them:
Hydra's documented examples for its Optuna sweeper with only the sweeper's name changed,
multi-objective studies, sampler nodes, grids, failures, pruning through the task's API,
chdir, resume, two workers, and an import check inside a plain app's task."""

from __future__ import annotations

import csv
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
import yaml
from hydra_plugins.sweeplab_optuna_sweeper._space import parse
from hydra_plugins.sweeplab_optuna_sweeper.study import open_storage
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

EXAMPLE = Path(__file__).resolve().parents[1] / "example"


def run_app(script: Path, *overrides: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`python script -m overrides` as a user types it; its output kept for the asserts (Hydra
    logs to stdout, the sweeper's errors go to stderr)."""
    return subprocess.run(
        [sys.executable, str(script), "-m", *overrides],
        cwd=cwd or script.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )


def study_of(sweep: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(str(sweep / "study.journal")))


def results(sweep: Path) -> dict:
    return yaml.safe_load((sweep / "optimization_results.yaml").read_text())


def hydra_sweeper_params(
    sampler: optuna.samplers.BaseSampler, directions: list[str],
    space: dict[str, optuna.distributions.BaseDistribution], objective, trials: int,
) -> list[dict]:  # fmt: skip
    """The trials hydra-optuna-sweeper would run one at a time (n_jobs: 1): ask, suggest each
    key in the order of `params`, tell. Its distributions are built here as its
    create_optuna_distribution_from_override builds them."""
    study = optuna.create_study(sampler=sampler, directions=directions)
    asked = []
    for _ in range(trials):
        trial = study.ask()
        for key, dist in space.items():
            trial._suggest(key, dist)
        study.tell(trial, objective(trial.params))
        asked.append(dict(trial.params))
    return asked


def test_hydras_sphere_example_runs_unchanged_and_draws_what_hydras_sweeper_draws(
    tmp_path: Path,
) -> None:
    sweep = tmp_path / "sphere"
    result = run_app(EXAMPLE / "sphere.py", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-2000:]
    study = study_of(sweep, "sphere")
    ours = [t.params for t in sorted(study.trials, key=lambda t: t.number)]
    expected = hydra_sweeper_params(
        optuna.samplers.TPESampler(seed=123, n_startup_trials=10, n_ei_candidates=24),
        ["minimize"],
        {"x": FloatDistribution(-5.5, 5.5, step=0.5), "y": CategoricalDistribution([-5, 0, 5])},
        lambda p: p["x"] ** 2 + p["y"] ** 2,
        20,
    )
    assert ours == expected
    best = results(sweep)
    assert best["best_value"] == min(p["x"] ** 2 + p["y"] ** 2 for p in expected)
    assert set(best["best_params"]) == {"x", "y"}
    assert f"best: trial {best['best_trial']}, value {best['best_value']:.6g}" in result.stdout
    x, y = best["best_params"]["x"], best["best_params"]["y"]
    assert f"its folder: {sweep / str(best['best_trial'])}" in result.stdout
    again = f"run it again: python {EXAMPLE / 'sphere.py'} x={x} y={y}\n"  # as it was typed
    assert again in result.stdout
    assert "[1/20] trial 0: x=" in result.stdout and "Launching 1 jobs locally" not in result.stdout
    # Hydra's default sweep folder has the time in it: the end says how to go on in this one
    assert f"continue this search: the same command with hydra.sweep.dir={sweep}" in result.stdout


def test_hydras_multi_objective_example_writes_its_pareto_front(tmp_path: Path) -> None:
    sweep = tmp_path / "binh_and_korn"
    result = run_app(EXAMPLE / "multi-objective.py", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-2000:]
    study = study_of(sweep, "multi-objective")
    ours = [t.params for t in sorted(study.trials, key=lambda t: t.number)]
    expected = hydra_sweeper_params(
        optuna.samplers.NSGAIISampler(seed=123),
        ["minimize", "minimize"],
        {"x": FloatDistribution(0, 5, step=0.5), "y": FloatDistribution(0, 3, step=0.5)},
        lambda p: (4 * p["x"] ** 2 + 4 * p["y"] ** 2, (p["x"] - 5) ** 2 + (p["y"] - 5) ** 2),
        20,
    )
    assert ours == expected
    solutions = results(sweep)["solutions"]
    front = {t.number for t in study.best_trials}
    assert {s["trial"] for s in solutions} == front
    with (sweep / "pareto.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert {int(r["trial"]) for r in rows} == front and set(rows[0]) >= {"value_0", "value_1", "x"}
    values = [(float(r["value_0"]), float(r["value_1"])) for r in rows]
    for a in values:  # no point of the front is dominated by another
        assert not any(b[0] <= a[0] and b[1] <= a[1] and b != a for b in values)
    assert f"Pareto front: {len(front)} of 20 completed trials" in result.stdout


def test_hydras_custom_search_space_example_adds_its_keys(tmp_path: Path) -> None:
    sweep = tmp_path / "custom"
    result = run_app(EXAMPLE / "custom-search-space-objective.py", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-2000:]
    best = results(sweep)
    assert set(best["best_params"]) == {"x", "y", "z", "+w"}
    assert abs(best["best_params"]["z"] - best["best_params"]["x"]) <= 0.5


APP = """
import os, sys
import hydra
from omegaconf import DictConfig
from hydra_plugins.sweeplab_optuna_sweeper import current_trial

@hydra.main(version_base=None, config_path=".", config_name="config")
def task(cfg: DictConfig):
    if cfg.get("modules_to"):
        watched = ("torch", "sweeplab", "sweeplab.train", "optuna")
        with open(cfg.modules_to, "a") as file:
            file.write(" ".join(m for m in watched if m in sys.modules) + "\\n")
    if cfg.fail:
        raise RuntimeError(f"x={cfg.x} is a bad point")
    trial = current_trial()
    for step in range(cfg.steps):
        if trial is not None:
            trial.report(cfg.x * (step + 1), step)
            if trial.should_prune():
                import optuna  # a trial has loaded it already

                raise optuna.TrialPruned()
    if cfg.pair:
        return cfg.x, -cfg.x
    return float(cfg.x)

if __name__ == "__main__":
    task()
"""
CONFIG = """
defaults:
  - override hydra/sweeper: sweeplab_optuna
hydra:
  sweeper:
    sampler: {seed: 0}
    n_trials: 4
    params:
      x: interval(0.0, 1.0)
x: 0.5
steps: 0
fail: false
pair: false
modules_to: null
"""


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """A ten-line Hydra app of a user's own, beside its config.yaml."""
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "config.yaml").write_text(textwrap.dedent(CONFIG))
    (folder / "app.py").write_text(textwrap.dedent(APP))
    return folder / "app.py"


def test_a_sampler_given_as_a_target_node_takes_its_arguments(app: Path, tmp_path: Path) -> None:
    config = app.parent / "config.yaml"
    config.write_text(config.read_text().replace(
        "sampler: {seed: 0}",
        "sampler: {_target_: optuna.samplers.TPESampler, n_startup_trials: 2, multivariate: true,"
        " seed: 7}",
    ))  # fmt: skip
    sweep = tmp_path / "sweep"
    result = run_app(app, f"hydra.sweep.dir={sweep}", "hydra.sweeper.n_trials=5")
    assert result.returncode == 0, result.stderr[-2000:]
    study = study_of(sweep, "sweeplab")
    assert (
        study.user_attrs["search.sampler"]
        == "TPESampler(multivariate=True, n_startup_trials=2, seed=7)"
    )
    expected = hydra_sweeper_params(
        optuna.samplers.TPESampler(n_startup_trials=2, multivariate=True, seed=7),
        ["maximize"], {"x": FloatDistribution(0.0, 1.0)}, lambda p: p["x"], 5,
    )  # fmt: skip
    assert [t.params for t in study.trials] == expected


def test_a_grid_stops_at_the_size_of_its_grid(app: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    result = run_app(
        app, f"hydra.sweep.dir={sweep}", "hydra/sweeper/sampler=grid", "x=range(1,3)",
        "hydra.sweeper.n_trials=10",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "the grid holds 3 configurations: running 3 trials, not n_trials=10" in result.stderr
    assert sorted(t.params["x"] for t in study_of(sweep, "sweeplab").trials) == [1, 2, 3]


def test_too_many_failures_stop_the_search_non_zero_with_the_last_error(
    app: Path, tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep"
    result = run_app(app, f"hydra.sweep.dir={sweep}", "fail=true")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "sweeplab_optuna: error: 1 of 1 trials failed, more than "
        "hydra.sweeper.max_failure_rate=0.0 allows; the last: trial 0: RuntimeError: "
        f"x={study_of(sweep, 'sweeplab').trials[0].params['x']} is a bad point"
    )
    (trial,) = study_of(sweep, "sweeplab").trials  # it stopped at the first failure
    assert trial.state == TrialState.FAIL and trial.user_attrs["status"] == "failed"


def test_a_search_whose_every_trial_failed_never_exits_zero(app: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    result = run_app(app, f"hydra.sweep.dir={sweep}", "pair=true",
                     "hydra.sweeper.max_failure_rate=1.0")  # fmt: skip
    assert result.returncode == 1
    assert "the task returned 2 value(s) to a study of 1 objective(s)" in result.stdout
    assert result.stderr.strip().splitlines()[-1] == (
        "sweeplab_optuna: error: no trial completed (4 failed)"
    )


def test_a_tuple_with_a_direction_list_is_a_multi_objective_study_with_names(
    app: Path, tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep"
    result = run_app(app, f"hydra.sweep.dir={sweep}", "pair=true",
                     "hydra.sweeper.direction=[maximize,maximize]",
                     "hydra.sweeper.metric_names=[up,down]")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    study = study_of(sweep, "sweeplab")
    assert study.metric_names == ["up", "down"]  # optuna-dashboard's axis names
    assert study.user_attrs["pruner"] == "none"  # null: no pruner for several objectives
    assert all(isinstance(v, str | int | float) for v in study.user_attrs.values())  # flat
    with (sweep / "pareto.csv").open() as file:
        assert next(csv.reader(file))[:3] == ["trial", "up", "down"]


def test_value_format_prints_each_objective_as_its_name_asks(app: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    result = run_app(app, f"hydra.sweep.dir={sweep}", "pair=true",
                     "hydra.sweeper.direction=[maximize,maximize]",
                     "hydra.sweeper.metric_names=[up,down]",
                     "hydra.sweeper.value_format={up: .1%}")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    for trial in study_of(sweep, "sweeplab").trials:  # `down` has no spec: .6g
        up, down = trial.values
        assert f"trial {trial.number} completed: up {up:.1%}, down {down:.6g}\n" in result.stdout


def test_a_value_format_that_is_no_format_spec_is_refused_before_any_trial(
    app: Path, tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep"
    result = run_app(app, f"hydra.sweep.dir={sweep}", "hydra.sweeper.value_format=percent")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "sweeplab_optuna: error: hydra.sweeper.value_format: 'percent' is not a Python format "
        "spec for a number; e.g. .6g, .2%, ,.0f"
    )
    assert not (sweep / "0").exists()


def test_pruning_a_multi_objective_study_is_refused_in_one_line(app: Path, tmp_path: Path) -> None:
    directions = "hydra.sweeper.direction=[maximize,minimize]"
    result = run_app(app, f"hydra.sweep.dir={tmp_path / 's'}", "pair=true", directions,
                     "hydra.sweeper.pruner=median")  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "sweeplab_optuna: error: hydra.sweeper.pruner=median: Optuna cannot prune a study of "
        "2 objectives; set hydra.sweeper.pruner=none"
    )


def test_a_task_that_reports_is_pruned_through_the_api(tmp_path: Path) -> None:
    sweep = tmp_path / "pruning"
    result = run_app(EXAMPLE / "pruning.py", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-2000:]
    study = study_of(sweep, "sweeplab")
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned and all(t.user_attrs["status"] == "pruned" for t in pruned)
    assert all(len(t.intermediate_values) < 5 for t in pruned)  # stopped before its last step
    assert study.best_trial.state == TrialState.COMPLETE
    assert f"[{pruned[0].number + 1}/12] trial {pruned[0].number} pruned at step" in result.stdout


def test_chdir_with_a_relative_sweep_dir_reaches_the_study(app: Path) -> None:
    result = run_app(app, "hydra.sweep.dir=relative/sweep", "hydra.job.chdir=true", "steps=3",
                     cwd=app.parent)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    study = study_of(app.parent / "relative" / "sweep", "sweeplab")
    assert all(len(t.intermediate_values) >= 1 for t in study.trials)  # each trial reported


@pytest.mark.slow
def test_the_same_command_resumes_and_two_commands_are_two_workers(
    app: Path, tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep"
    first = run_app(app, f"hydra.sweep.dir={sweep}", "hydra.sweeper.n_trials=2")
    again = run_app(app, f"hydra.sweep.dir={sweep}", "hydra.sweeper.n_trials=2")
    assert first.returncode == again.returncode == 0 and "[1/2] trial 0: x=" in first.stdout
    assert "/2: x=" not in again.stdout  # no trial started
    assert "2 of 2 trials done (n_trials=2): nothing to run" in again.stdout
    command = [sys.executable, str(app), "-m", f"hydra.sweep.dir={sweep}",
               "hydra.sweeper.n_trials=8"]  # fmt: skip
    workers = [subprocess.Popen(command, cwd=app.parent, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]  # fmt: skip
    errors = [worker.communicate(timeout=300)[1] for worker in workers]
    assert [w.returncode for w in workers] == [0, 0], errors
    study = study_of(sweep, "sweeplab")
    assert sorted(t.number for t in study.trials) == list(range(8))
    assert len({t.params["x"] for t in study.trials}) == 8  # each worker drew its own


def test_the_plugin_imports_neither_torch_nor_sweeplab_in_a_plain_apps_task(
    app: Path, tmp_path: Path
) -> None:
    seen = tmp_path / "modules.txt"
    plain = subprocess.run([sys.executable, str(app), f"modules_to={seen}"], cwd=app.parent,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert plain.returncode == 0, plain.stderr[-2000:]
    searched = run_app(app, f"hydra.sweep.dir={tmp_path / 'sweep'}", f"modules_to={seen}",
                       "hydra.sweeper.n_trials=1")  # fmt: skip
    assert searched.returncode == 0, searched.stderr[-2000:]
    alone, in_search = seen.read_text().splitlines()
    assert alone == ""  # Hydra imported every plugin: no torch, no sweeplab, no Optuna
    assert in_search == "optuna"  # the search itself needs Optuna, nothing more


@pytest.mark.parametrize(
    ("line", "expected"),
    [  # hydra-optuna-sweeper's own test table, and a mixed choice
        ("x=range(1,3)", IntDistribution(1, 3)),  # 3 included, as that sweeper reads it
        ("x=range(0,10,step=5)", IntDistribution(0, 10, step=5)),
        ("x=range(0.5,5.5,step=1)", FloatDistribution(0.5, 5.5, step=1)),  # a stepped float
        ("x=interval(1,5)", FloatDistribution(1, 5)),
        ("x=int(interval(1,5))", IntDistribution(1, 5)),  # an interval of ints
        ("x=tag(log,interval(1e-4,1e-1))", FloatDistribution(1e-4, 1e-1, log=True)),
        ("x=tag(log,int(interval(1,64)))", IntDistribution(1, 64, log=True)),
        ("x=shuffle(range(1,3))", CategoricalDistribution([1, 2])),  # shuffle: a choice
        ("x=choice(1,'a',true,0.5)", CategoricalDistribution([1, "a", True, 0.5])),
    ],
)
def test_the_override_grammar_reads_as_hydras_optuna_sweeper_reads_it(line: str, expected) -> None:
    space, fixed = parse([line, "y=3"])
    assert fixed == ["y=3"]
    if "shuffle" in line:  # in the order shuffle drew
        assert set(space["x"].choices) == set(expected.choices)
    else:
        assert space == {"x": expected}


def test_sweep_returns_none_as_hydras_optuna_sweeper_does() -> None:
    from hydra_plugins.sweeplab_optuna_sweeper.optuna_sweeper import SweeplabOptunaSweeper

    class Ran:
        def run(self, arguments: list[str]) -> list[str]:
            self.arguments = arguments
            return ["what the search keeps for itself"]

    sweeper = SweeplabOptunaSweeper()
    sweeper.search = Ran()
    assert sweeper.sweep(["x=1"]) is None and sweeper.search.arguments == ["x=1"]
