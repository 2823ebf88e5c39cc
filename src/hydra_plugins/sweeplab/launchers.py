"""Hydra's submitit launchers (SLURM, and its local twin), where a job that the cluster
cancels or kills counts as one failed job instead of ending the whole sweep.

Hydra's own launcher collects every job's result at once and raises submitit's
`UncompletedJobError` for the first job that produced none (`scancel`, a node failure), which
loses the report and leaves the other jobs' results unlisted. Here such a job gets a failure
note and `status: failed` in its run folder, and the sweep goes on to its end, where the
sweep-end callback lists it and exits 1. Preemption is unchanged: submitit requeues the job
on SIGUSR2 and Hydra's `checkpoint()` resumes it, and the run resumes from its last.pt.

sweeplab's run folder (and so torch) is imported only when a job needs a failure note: Hydra
imports every installed plugin whenever any Hydra app starts.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_submitit_launcher import submitit_launcher

log = logging.getLogger(__name__)


def _run_folder(sweep_dir: Path, overrides: list[str]) -> Path | None:
    """The job folder whose .hydra/overrides.yaml holds exactly these overrides."""
    from sweeplab.run_format import OVERRIDES, read_overrides

    for path in sweep_dir.glob(f"*/{OVERRIDES}"):
        if read_overrides(path.parents[1]) == [str(o) for o in overrides]:
            return path.parents[1]
    return None


def record_uncompleted(sweep_dir: Path, overrides: list[str], error: Exception) -> None:
    """Note a job that produced no result as failed, in the sweep and in its run folder."""
    from sweeplab.run_folder import note_failed_job
    from sweeplab.run_format import SUMMARY, Status, Summary

    reason = str(error).splitlines()[0]
    state = next((line for line in str(error).splitlines() if "state:" in line), reason)
    message = f"the cluster ended the job without a result ({state.split('(')[-1].rstrip(')')})"
    folder = _run_folder(sweep_dir, overrides)
    job = folder.name if folder is not None else " ".join(overrides)
    note_failed_job(sweep_dir, job, RuntimeError(message))
    if folder is not None:
        summary = Summary.load(folder) if (folder / SUMMARY).exists() else None
        summary = summary or Summary()
        if summary.status != Status.COMPLETED:
            summary.end(Status.FAILED, message)
            summary.write(folder)
    log.error("job %s: %s", job, message)


@contextmanager
def _failures_counted(sweep_dir: Path, jobs_overrides: Sequence[Sequence[str]]) -> Iterator[None]:
    """While Hydra collects the results, a job without one returns NaN (as a failed job of
    run.py does) after `record_uncompleted`, instead of raising."""
    import submitit
    from submitit.core.utils import UncompletedJobError

    original: Callable[..., Any] = submitit.core.core.Job.results
    collected = 0  # Hydra collects the jobs' results in the order it submitted them

    def results(job: Any) -> list[Any]:
        nonlocal collected
        index, collected = collected, collected + 1
        try:
            return original(job)
        except UncompletedJobError as err:
            overrides = list(jobs_overrides[index]) if index < len(jobs_overrides) else []
            record_uncompleted(sweep_dir, overrides, err)
            return [
                JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value=math.nan)
            ]

    submitit.core.core.Job.results = results  # type: ignore[method-assign]
    try:
        yield
    finally:
        submitit.core.core.Job.results = original  # type: ignore[method-assign]


class CountsCancelledJobs:
    """Mixed into a submitit launcher: its `launch` collects results through
    `_failures_counted`."""

    config: Any

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        assert self.config is not None
        with _failures_counted(Path(str(self.config.hydra.sweep.dir)), job_overrides):
            return super().launch(job_overrides, initial_job_idx)  # type: ignore[misc]


class SlurmLauncher(CountsCancelledJobs, submitit_launcher.SlurmLauncher):
    """`hydra/launcher=slurm`"""


class LocalLauncher(CountsCancelledJobs, submitit_launcher.LocalLauncher):
    """`hydra/launcher=local`: the same code path on this machine"""
