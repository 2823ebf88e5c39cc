"""A trial's job as Hydra's launchers see it: the override that passes the trial through the
job's environment, and what the job's end means for the study (its state, values, reason)."""

from __future__ import annotations

import math
from typing import Any

import optuna
from hydra.core.utils import JobReturn, JobStatus
from optuna.trial import TrialState

# a trial's state -> its `status` attribute, as run folders say it
STATUS_NAMES = {
    TrialState.COMPLETE: "completed",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
}


def quoted(value: str) -> str:
    """A value for Hydra's override grammar, whatever characters a path holds."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def env_override(name: str, value: Any) -> str:
    """A job override that sets `name` in the job's environment (Hydra's hydra.job.env_set);
    the key exists already (`Search._pass_trials_by_env`), so no `+` and Hydra's launchers
    leave it out of the lines they print."""
    return f"hydra.job.env_set.{name}={quoted(str(value))}"


def outcome(job: JobReturn, objectives: int) -> tuple[TrialState, list[float] | None, str | None]:
    """How the job ended, for the study: its state, its values, a failure's one-line reason.
    The task's return value is the objective (a tuple for several); optuna.TrialPruned raised
    by the task is a pruned trial."""
    if job.status != JobStatus.COMPLETED:
        err = job._return_value  # Hydra keeps the task's exception there
        if isinstance(err, optuna.TrialPruned):
            return TrialState.PRUNED, None, None
        return TrialState.FAIL, None, f"{type(err).__name__}: {err}".splitlines()[0]
    value = job.return_value
    several = isinstance(value, list | tuple)
    given = len(value) if several else 1
    if given != objectives:
        reason = (f"the task returned {given} value(s) to a study of {objectives} objective(s): "
                  "return one per entry of hydra.sweeper.direction")  # fmt: skip
        return TrialState.FAIL, None, reason
    try:
        values = [float(v) for v in (value if several else [value])]
    except (TypeError, ValueError):
        return TrialState.FAIL, None, f"the task returned {value!r}, not a number"
    if not all(math.isfinite(v) for v in values):
        return TrialState.FAIL, None, f"the task returned {value!r}"
    return TrialState.COMPLETE, values, None


def folder_of(job: JobReturn) -> str | None:
    """The job's output folder, as Hydra made it."""
    try:
        return str(job.hydra_cfg.hydra.runtime.output_dir)
    except Exception:
        return None
