"""A real one-node SLURM cluster (Debian's slurm-wlm, started by scripts/start_slurm_cluster.sh
where root and apt allow it): a cancelled job is one failed job of a sweep that still ends
with its report, and a preempted job is requeued and resumes after its last epoch."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT

# One cluster for the module, so its tests run on one xdist worker.
pytestmark = [pytest.mark.service, pytest.mark.slow, pytest.mark.xdist_group("slurm")]
SLURM = [
    "hydra/launcher=slurm", "hydra.launcher.partition=cpu", "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=2", "batch_size=64", "progress=false", "figures=false",
]  # fmt: skip


LIVE_STATES = {"PENDING", "RUNNING", "COMPLETING", "REQUEUED", "RESIZING", "SUSPENDED"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The test cluster in a folder of its own (config, state, spool, ports, accounting
    database): a SLURM the machine runs already is neither used nor changed. Every command of
    the module (sbatch, squeue, submitit's) reaches it through SLURM_CONF."""
    if os.geteuid() != 0 or not (shutil.which("apt-get") or shutil.which("slurmctld")):
        pytest.skip("a SLURM cluster needs root and apt here (scripts/start_slurm_cluster.sh)")
    folder = tmp_path_factory.mktemp("slurm")
    started = subprocess.run(
        ["bash", str(ROOT / "scripts" / "start_slurm_cluster.sh"), str(folder)],
        capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    try:
        if started.returncode != 0:
            reason = started.stderr.strip()[-300:] or f"exit status {started.returncode}"
            pytest.skip(f"no SLURM cluster here: {reason}")
        with pytest.MonkeyPatch.context() as env:
            env.setenv("SLURM_CONF", str(folder / "slurm.conf"))
            yield
    finally:
        subprocess.run(["bash", str(ROOT / "scripts" / "stop_slurm_cluster.sh"), str(folder)])


def sweep(sweep_dir: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "-m", *SLURM, *args, f"hydra.sweep.dir={sweep_dir}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def slurm_job(sweep_dir: Path, folder: str, index: int, process: subprocess.Popen[str]) -> str:
    """The SLURM job id of the sweep's job number `index`, whose folder ends with `folder`,
    once the job has saved an epoch: `<job>_<index>` in an array of several, `<job>` alone."""
    deadline = time.monotonic() + 300
    while not list(sweep_dir.glob(f"*{folder}/checkpoints/last.pt")):
        assert process.poll() is None and time.monotonic() < deadline, "the job never started"
        time.sleep(0.2)
    queue = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout
    jobs = [job for job in queue.split() if job.endswith(f"_{index}") or job.isdigit()]
    assert len(jobs) == 1, queue
    return jobs[0]


def release_when_pending(job: str) -> None:
    """Once the requeued `job` is pending again, let it start now rather than at the begin
    time SLURM gives a requeued job (about two minutes on)."""
    deadline = time.monotonic() + 120
    while True:
        state = subprocess.run(
            ["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True
        )
        if state.stdout.strip() == "PENDING":
            break
        assert time.monotonic() < deadline, f"job {job} was not requeued: {state.stdout!r}"
        time.sleep(0.2)
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True)


def accounted_end_states(job: str, tasks: int, timeout: float) -> list[str]:
    """`State|ExitCode` of each of `job`'s array tasks once SLURM's accounting has every one
    ended. The queue empties before slurmdbd records the end, so a task that has left
    `squeue` can still read RUNNING in `sacct` for a moment: wait on `sacct` itself."""
    deadline = time.monotonic() + timeout
    while True:
        states = subprocess.run(
            ["sacct", "-n", "-X", "-P", "-j", job, "-o", "State,ExitCode"],
            capture_output=True, text=True,
        ).stdout.split()  # fmt: skip
        ended = [state for state in states if state.split("|")[0] not in LIVE_STATES]
        if len(ended) == tasks == len(states):
            return states
        assert time.monotonic() < deadline, f"job {job} did not end in {timeout} s: {states}"
        time.sleep(1)


def summary(sweep_dir: Path, folder: str) -> dict:
    (path,) = sweep_dir.glob(f"*{folder}/summary.json")
    return json.loads(path.read_text())


def test_a_cancelled_job_is_one_failed_job_and_the_sweep_ends_with_its_report(
    cluster: None, tmp_path: Path
) -> None:
    # Job 0 trains one epoch; job 1 would train for minutes, and is cancelled after its first.
    process = sweep(tmp_path, "dataset.subset=20000", "epochs=1,40")
    subprocess.run(["scancel", slurm_job(tmp_path, "epochs=40", 1, process)], check=True)
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 1 and "Traceback" not in stderr, stderr[-3000:]
    assert "sweeplab: 1 job(s) failed" in stderr and "CANCELLED" in stderr
    assert summary(tmp_path, "epochs=1")["status"] == "completed"  # the other job's result
    cancelled = summary(tmp_path, "epochs=40")
    assert cancelled["status"] == "failed" and "CANCELLED" in cancelled["error"]
    report = (tmp_path / "report" / "report.md").read_text()
    assert "- runs: 2 (1 completed, 1 failed)" in report


def test_a_preempted_job_is_requeued_and_resumes_after_its_last_epoch(
    cluster: None, tmp_path: Path
) -> None:
    process = sweep(tmp_path, "dataset.subset=8192", "epochs=8", "seed=0")
    job = slurm_job(tmp_path, "seed=0", 0, process)
    subprocess.run(["scancel", f"--signal={signal.SIGUSR2.name[3:]}", job], check=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob("*seed=0/summary.json")):
        assert time.monotonic() < deadline, "the preempted run wrote no status"
        time.sleep(0.2)
    noted = summary(tmp_path, "seed=0")  # what the folder says while SLURM holds the requeued job
    assert noted["status"] == "interrupted" and noted["error"].startswith("SIGUSR2")
    release_when_pending(job)  # SLURM would hold the requeued job about two minutes
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    assert summary(tmp_path, "seed=0")["status"] == "completed"
    (log,) = tmp_path.glob("*seed=0/run.log")
    assert "resuming" in log.read_text() and "after epoch" in log.read_text()
    (metrics,) = tmp_path.glob("*seed=0/metrics.csv")
    rows = pd.read_csv(metrics)
    assert list(zip(rows.epoch, rows.split, strict=True)) == [
        *((epoch, split) for epoch in range(1, 9) for split in ("train", "val")),
        (8, "test"),
    ]


def test_slurm_array_tasks_are_workers_of_one_search(cluster: None, tmp_path: Path) -> None:
    import optuna
    from hydra_plugins.sweeplab_optuna_sweeper.study import open_storage

    sweep_dir = tmp_path / "sweep"
    worker = (
        f"cd {ROOT} && {sys.executable} run.py -m hydra/sweeper=sweeplab_optuna "
        "'optimizer.lr=tag(log,interval(0.001,0.03))' hydra.sweeper.pruner=none "
        "hydra.sweeper.n_trials=4 dataset.subset=1024 epochs=1 threads=1 progress=false "
        f"figures=false hydra.sweep.dir={sweep_dir}"
    )
    submitted = subprocess.run(
        ["sbatch", "--parsable", "--array=1-2", "--partition=cpu", "--cpus-per-task=1",
         "--mem=2G", f"--output={tmp_path}/worker_%a.log", "--wrap", worker],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    job = submitted.stdout.strip().split(";")[0]
    states = accounted_end_states(job, tasks=2, timeout=600)
    assert states == ["COMPLETED|0:0", "COMPLETED|0:0"], states
    storage = open_storage(str(sweep_dir / "study.journal"))
    study = optuna.load_study(study_name="sweeplab", storage=storage)
    assert sorted(t.number for t in study.trials) == [0, 1, 2, 3]  # 4 in all, none twice
    assert {t.state.name for t in study.trials} == {"COMPLETE"}
    logs = [(tmp_path / f"worker_{i}.log").read_text() for i in (1, 2)]
    assert all("Traceback" not in log for log in logs)
