"""What a task function launched by the search may ask of it: its trial, to report
intermediate values and to be pruned.

The sweeper passes the trial to each job through the job's environment (Hydra's
`hydra.job.env_set`), never through the app's own config keys, so any app can be searched:

    from hydra_plugins.sweeplab_optuna_sweeper import current_trial

    trial = current_trial()  # None when the job is not a search's trial
    for step in range(steps):
        value = train_one_step()
        if trial is not None:
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()  # the sweeper tells the study: pruned

Nothing here imports Optuna until `current_trial` is called.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from optuna.trial import Trial

ENV_STORAGE = "SWEEPLAB_OPTUNA_STORAGE"
ENV_STUDY = "SWEEPLAB_OPTUNA_STUDY"
ENV_TRIAL = "SWEEPLAB_OPTUNA_TRIAL"  # the trial's number
ENV_CONFIRMS = "SWEEPLAB_OPTUNA_CONFIRMS"  # a confirmation run: the trial it repeats


@dataclass(frozen=True)
class TrialInfo:
    """Where the job's trial lives, read from the job's environment."""

    storage: str
    study_name: str
    number: int | None  # None for a confirmation run, which is no trial of the study
    confirms: int | None  # the trial whose configuration a confirmation run repeats


def _int(name: str) -> int | None:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else None


def trial_info() -> TrialInfo | None:
    """The search's record of this job, or None when no search launched it."""
    storage, study = os.environ.get(ENV_STORAGE), os.environ.get(ENV_STUDY)
    if not storage or not study:
        return None
    return TrialInfo(storage, study, _int(ENV_TRIAL), _int(ENV_CONFIRMS))


def current_trial() -> Trial | None:
    """This job's Optuna trial, with its study's pruner, or None when it is no trial (not a
    search's job, or a confirmation run). `report(value, step)` and `should_prune()` are
    Optuna's; raise `optuna.TrialPruned` to end the job as pruned."""
    info = trial_info()
    if info is None or info.number is None:
        return None
    import optuna
    from hydra_plugins.sweeplab_optuna_sweeper.study import load_study

    study = load_study(info.storage, info.study_name)
    frozen = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, info.number)
    return optuna.trial.Trial(study, frozen)
