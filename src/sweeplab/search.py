"""The run's side of a search by sweeplab's Optuna sweeper (`plugins/sweeplab_optuna_sweeper`):
the model-dependent part of the space, and the hook that reports each epoch's val accuracy to
the trial and stops a losing run.

The run asks the sweeper's public API for its trial (`current_trial()`, from the job's
environment), as any Hydra app would; Optuna is imported only when the run is a trial.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra_plugins.sweeplab_optuna_sweeper import current_trial, trial_info
from hydra_plugins.sweeplab_optuna_sweeper.study import pruner_of
from omegaconf import DictConfig

from sweeplab.config import OBJECTIVES, RunConfig, objective_names
from sweeplab.hooks import EpochEnd, RunHook
from sweeplab.run_format import Summary

if TYPE_CHECKING:
    from optuna.trial import Trial

log = logging.getLogger(__name__)

# model field -> (low, high) of a uniform search, for every model that has the field
MODEL_RANGES = {"dropout": (0.0, 0.5)}


def model_search_space(cfg: DictConfig, trial: Trial) -> None:
    """Suggest each of MODEL_RANGES's fields that the chosen model has (LeNet-5 as in 1998
    has no dropout); `custom_search_space` of conf/hparams_search/fashion_optuna.yaml."""
    for key, (low, high) in MODEL_RANGES.items():
        if key in cfg.model:
            trial.suggest_float(f"model.{key}", low, high)


class TrialReporter(RunHook):
    """After each epoch: the val accuracy to the trial, and the pruner's verdict to the run.
    After the last epoch the pruner is not asked: stopping then saves nothing, and the trial
    that trained every epoch is completed, with its test accuracy. A study of several
    objectives cannot be pruned: nothing is reported to it."""

    def __init__(self, trial: Trial) -> None:
        self.trial = trial
        frozen = trial.study.get_trials(deepcopy=False)[trial.number]
        self.reported = set(frozen.intermediate_values)
        self.pruner, _ = pruner_of(trial.study.user_attrs)
        self.epochs = 0  # the run's, from start()

    def _report(self, value: float, epoch: int) -> None:
        if epoch not in self.reported:  # a resumed trial reported its earlier epochs already
            self.trial.report(value, epoch)
            self.reported.add(epoch)

    def start(self, run: RunConfig, run_dir: Path, history: list[dict[str, Any]]) -> None:
        self.epochs = run.epochs
        for row in history:
            if row["split"] == "val":
                self._report(float(row["accuracy"]), int(row["epoch"]))

    def epoch_end(self, end: EpochEnd) -> str | None:
        value = float(end.row("val")["accuracy"])
        self._report(value, end.epoch)
        if end.epoch < self.epochs and self.trial.should_prune():
            return (
                f"pruned by the {self.pruner} pruner after epoch {end.epoch} "
                f"(val accuracy {value:.4f})"
            )
        return None


def search_hooks() -> list[RunHook]:
    """The trial reporter when the run is a trial of a single-objective search, else nothing."""
    trial = current_trial()
    if trial is None or len(trial.study.directions) > 1:
        return []
    return [TrialReporter(trial)]


def objective_of(cfg: DictConfig, summary: Summary) -> float | tuple[float, ...]:
    """What the run returns to a search: its `objective` values (NaN where a run did not
    reach one). A trial the pruner stopped raises optuna.TrialPruned, as Optuna's own
    objectives do, so that the sweeper tells the study it was pruned."""
    if summary.status == "pruned" and trial_info() is not None:
        import optuna

        raise optuna.TrialPruned(summary.error or "pruned")
    values = []
    for name in objective_names(cfg.objective):
        value = getattr(summary, OBJECTIVES[name])
        values.append(float("nan") if value is None else float(value))
    return values[0] if len(values) == 1 else tuple(values)
