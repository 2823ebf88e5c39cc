"""Real Hydra multiruns in subprocesses: launchers, job folders, resume, failures, Optuna."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from scipy import stats

from tests.conftest import GRID, metrics_without_timing, run_sweep


def summaries(sweep_dir: Path) -> dict[str, dict]:
    return {
        path.parent.name: json.loads(path.read_text()) for path in sweep_dir.glob("*/summary.json")
    }


def test_joblib_sweep_names_each_job_folder_by_its_overrides(joblib_sweep: Path) -> None:
    runs = summaries(joblib_sweep)
    assert len(runs) == 8 and {s["status"] for s in runs.values()} == {"completed"}
    assert "regularization.noise_std=0.3,regularization.weight_decay=0.01,seed=1" in "\n".join(runs)
    assert len({s["config_hash"] for s in runs.values()}) == 8


def test_joblib_jobs_share_the_cores_instead_of_oversubscribing(joblib_sweep: Path) -> None:
    # n_jobs defaults to every core, so each job gets cores // n_jobs = 1 torch thread.
    logs = [path.read_text() for path in joblib_sweep.glob("*/run.log")]
    assert len(logs) == 8
    assert all("1 torch thread(s)" in log for log in logs)


def test_a_dry_run_lists_each_job_as_run_resume_or_skip_and_runs_nothing(
    joblib_sweep: Path,
) -> None:
    before = {p: p.stat().st_mtime_ns for p in joblib_sweep.rglob("*") if p.is_file()}
    grid = [a if not a.startswith("seed=") else "seed=0,1,2" for a in GRID]
    result = run_sweep(joblib_sweep, "epochs=1", "hydra/launcher=joblib", *grid, "dry_run=true")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert (
        lines[-1] == f"sweeplab: dry run of 12 jobs in {joblib_sweep}: 4 run, 8 skip; nothing ran"
    )
    jobs = [line for line in lines if line.startswith("#")]
    assert len(jobs) == 12 and sum(" skip " in j and "(completed already)" in j for j in jobs) == 8
    assert all(" run " in j and "seed=2" in j for j in jobs if " skip " not in j)
    after = {p: p.stat().st_mtime_ns for p in joblib_sweep.rglob("*") if p.is_file()}
    assert after == before  # nothing written, nothing trained


def test_each_line_of_a_parallel_job_says_which_job_it_is(joblib_sweep: Path) -> None:
    numbers = set()
    for path in joblib_sweep.glob("*/run.log"):
        lines = [line for line in path.read_text().splitlines() if "[sweeplab." in line]
        labels = {line.split(" - ", 1)[1].split("]")[0] for line in lines}
        assert len(lines) >= 3 and len(labels) == 1, lines  # every line, one job's label
        numbers.add(labels.pop())
    assert numbers == {f"[job {n}" for n in range(8)}


def test_report_summary_equals_our_own_computation(joblib_sweep: Path) -> None:
    report = joblib_sweep / "report"
    summary = pd.read_csv(report / "summary.csv")
    rows = []
    for path in joblib_sweep.glob("*/summary.json"):
        config = yaml.safe_load((path.parent / ".hydra" / "config.yaml").read_text())
        reg = config["regularization"]
        rows.append((reg["weight_decay"], reg["noise_std"], json.loads(path.read_text())))
    for (wd, noise), group in pd.DataFrame(rows, columns=["wd", "noise", "s"]).groupby(
        ["wd", "noise"]
    ):
        accuracies = pd.Series([s["test_accuracy"] for s in group.s])
        line = summary[
            (summary["regularization.weight_decay"] == wd)
            & (summary["regularization.noise_std"] == noise)
        ].iloc[0]
        assert line["n"] == 2
        assert line["mean"] == pytest.approx(accuracies.mean(), abs=1e-12)
        assert line["std"] == pytest.approx(accuracies.std(ddof=1), abs=1e-12)
        assert (line["min"], line["max"]) == (accuracies.min(), accuracies.max())
        half = stats.t.ppf(0.975, 1) * accuracies.std(ddof=1) / 2**0.5  # t * s / sqrt(n)
        assert line["ci95_high"] == pytest.approx(accuracies.mean() + half, abs=1e-12)


def test_report_names_the_swept_keys_and_its_heatmap_has_their_values(
    joblib_sweep: Path,
) -> None:
    text = (joblib_sweep / "report" / "report.md").read_text()
    assert "swept keys: regularization.weight_decay, regularization.noise_std" in text
    assert "seeds (replicates): [0, 1]" in text
    grid = pd.read_csv(joblib_sweep / "report" / "heatmap.csv", index_col=0)
    assert grid.index.name == "regularization.weight_decay"
    assert list(grid.index) == [0.0, 0.01]
    assert [float(c) for c in grid.columns] == [0.0, 0.3]
    assert (joblib_sweep / "report" / "heatmap.png").stat().st_size > 0


@pytest.mark.slow
def test_submitit_local_sweep_runs_every_job(tmp_path: Path) -> None:
    # Two jobs: each is a process of its own under submitit, so each costs a start-up.
    result = run_sweep(tmp_path, "epochs=1", "hydra/launcher=submitit_local", "seed=0,1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert [s["status"] for s in summaries(tmp_path).values()] == ["completed"] * 2
    assert "- runs: 2 (2 completed)" in (tmp_path / "report" / "report.md").read_text()


@pytest.mark.slow
def test_sweep_run_again_skips_resumes_reruns_and_adds_only_new_values(
    tmp_path: Path,
) -> None:
    args = ["epochs=2", "model.dropout=0.2", "regularization.noise_std=0.1"]
    assert run_sweep(tmp_path, *args, "seed=0,1,2").returncode == 0
    interrupted, failed, completed = sorted(p.parent for p in tmp_path.glob("*/summary.json"))
    original = metrics_without_timing(interrupted)
    # Make one look interrupted (metrics cut after epoch 1, no summary) and one failed.
    metrics = pd.read_csv(interrupted / "metrics.csv")
    metrics[metrics.epoch <= 1].to_csv(interrupted / "metrics.csv", index=False)
    (interrupted / "summary.json").unlink()
    summary = json.loads((failed / "summary.json").read_text())
    (failed / "summary.json").write_text(json.dumps({**summary, "status": "failed"}))
    # Hydra's own files are rewritten, and the lock file names each process that checks it.
    ours = [
        p
        for p in completed.rglob("*")
        if ".hydra" not in p.parts and p.name not in ("run.log", ".lock")
    ]
    untouched = {p: p.stat().st_mtime_ns for p in ours}
    failed_mtime = (failed / "metrics.csv").stat().st_mtime_ns

    result = run_sweep(tmp_path, *args, "seed=0,1,2,3")  # one new value on the seed axis
    assert result.returncode == 0, result.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in untouched} == untouched
    resumed = metrics_without_timing(interrupted)
    pd.testing.assert_frame_equal(resumed, original)
    assert (failed / "metrics.csv").stat().st_mtime_ns != failed_mtime
    statuses = [s["status"] for s in summaries(tmp_path).values()]
    assert statuses == ["completed"] * 4
    output = result.stdout + result.stderr
    assert output.count("already completed with this config; skipped") == 1


@pytest.mark.slow
def test_a_failing_job_does_not_stop_the_others_and_the_sweep_exits_non_zero(
    tmp_path: Path,
) -> None:
    result = run_sweep(tmp_path, "epochs=1", "input_size=28", "model=alexnet,lenet5")
    assert result.returncode == 1
    assert "1 job(s) failed" in result.stderr and "model=alexnet" in result.stderr
    runs = summaries(tmp_path)
    prefix = "batch_size=64,dataset.subset=512,epochs=1,input_size=28"
    assert runs[f"{prefix},model=lenet5"]["status"] == "completed"
    assert runs[f"{prefix},model=alexnet"]["status"] == "failed"
    report = (tmp_path / "report" / "report.md").read_text()
    assert "## Runs not completed" in report and "cannot take input_size=28" in report


@pytest.mark.slow
def test_a_folder_of_another_config_stops_that_job_with_a_clear_message(tmp_path: Path) -> None:
    # With epochs left out of the folder names, a changed epoch count lands in old folders.
    same_names = "hydra.job.config.override_dirname.exclude_keys=[epochs]"
    assert run_sweep(tmp_path, "epochs=1", "seed=0", same_names).returncode == 0
    result = run_sweep(tmp_path, "epochs=2", "seed=0", same_names)
    assert result.returncode == 1
    assert "holds a run of another config" in result.stderr
    assert json.loads(next(tmp_path.glob("*/summary.json")).read_text())["epochs"] == 1


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "searched"),
    [
        ("lenet5", {"optimizer.lr", "regularization.weight_decay", "regularization.noise_std",
                    "model.dropout"}),
        ("lenet5_classic_lecun", {"optimizer.lr", "regularization.weight_decay",
                                  "regularization.noise_std"}),  # no dropout to search
    ],
)  # fmt: skip
def test_optuna_search_runs_two_trials_on_val_accuracy_over_the_keys_its_model_has(
    tmp_path: Path, model: str, searched: set[str]
) -> None:
    result = run_sweep(
        tmp_path, "epochs=1", "hparams_search=fashion_optuna", "hydra.sweeper.n_trials=2",
        f"model={model}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    trials = summaries(tmp_path)
    assert sorted(trials) == ["trial-000", "trial-001"]  # folders sort by trial number
    results = yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())
    assert results["best_value"] == max(s["best_val_accuracy"] for s in trials.values())
    assert set(results["best_params"]) == searched
    best = f"trial-{results['best_trial']:03d}"
    assert results["best_folder"] == str(tmp_path / best)
    report = (tmp_path / "report" / "report.md").read_text()
    assert f"its run folder: [{best}](../{best}/)" in report


@pytest.mark.slow
def test_job_folders_past_the_file_name_limit_are_hashed_and_found_again(tmp_path: Path) -> None:
    long_label = "variant=" + "a_very_long_study_arm_name_" * 12  # 332 bytes of overrides
    args = ["epochs=1", "hydra/launcher=joblib", long_label, "seed=0,1"]
    assert run_sweep(tmp_path, *args).returncode == 0
    folders = [p.parent for p in tmp_path.glob("*/summary.json")]
    assert len(folders) == 2 and all(len(f.name.encode()) <= 200 for f in folders)
    assert all(
        "a_very_long_study_arm_name_" * 12 in (f / ".hydra" / "overrides.yaml").read_text()
        for f in folders
    )
    again = run_sweep(tmp_path, *args)  # each hashed folder found: nothing to run, one line
    assert again.returncode == 0
    assert again.stderr.strip() == (
        f"sweeplab: 2 of 2 runs in {tmp_path} finished; nothing to run (report: "
        f"{tmp_path / 'report' / 'report.md'})"
    )


def compose_with_hydra(*overrides: str):
    from hydra import compose, initialize_config_dir

    from tests.conftest import CONF

    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        return compose("config", list(overrides), return_hydra_config=True)


def test_the_flagship_experiment_sweeps_the_grid_the_readme_names() -> None:
    cfg = compose_with_hydra("+experiment=wd_vs_noise")
    assert (cfg.epochs, cfg.model.name, cfg.hydra.sweep.dir) == (
        5,
        "lenet5",
        "multirun/wd_vs_noise",
    )
    assert dict(cfg.hydra.sweeper.params) == {
        "regularization.weight_decay": "0,1e-4,1e-3,1e-2",
        "regularization.noise_std": "0,0.1,0.2,0.3",
        "seed": "0,1,2",
    }


@pytest.mark.parametrize(
    ("launcher", "plugin", "cpus_per_task"),
    [
        ("joblib", "JoblibLauncher", None),
        ("slurm", "SlurmLauncher", 2),
        ("local", "LocalLauncher", 1),
        ("submitit_slurm", "SlurmLauncher", None),
    ],
)
def test_launcher_configs_name_the_real_plugin_with_their_resources(
    launcher: str, plugin: str, cpus_per_task: int | None
) -> None:
    from hydra.utils import get_class

    cfg = compose_with_hydra(f"hydra/launcher={launcher}").hydra.launcher
    assert get_class(cfg._target_).__name__ == plugin  # the plugin is installed and importable
    assert cfg.get("cpus_per_task") == cpus_per_task
    if launcher == "slurm":
        assert cfg.mem_gb == 4 and cfg.timeout_min == 60
