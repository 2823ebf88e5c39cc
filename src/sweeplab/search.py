"""The run's side of a search: the model-dependent part of the space, the study's storage,
and the hook that reports each epoch's val accuracy to the trial and stops a losing run.

sweeplab's search sweeper (`src/hydra_plugins/sweeplab/`) launches each trial with
`search.storage`, `search.study` and `search.trial` set; `train_and_evaluate` then adds a
`TrialReporter` to its hooks. Optuna is imported only then.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from sweeplab.config import RunConfig, TrialConfig
from sweeplab.hooks import EpochEnd, RunHook

if TYPE_CHECKING:
    from optuna.storages import BaseStorage
    from optuna.trial import Trial

log = logging.getLogger(__name__)

# model field -> (low, high) of a uniform search, for every model that has the field
MODEL_RANGES = {"dropout": (0.0, 0.5)}
PRUNER_ATTR = "sweeplab.pruner"  # the study's pruner: {"name": ..., "args": {...}}
SEARCH_ATTR = "sweeplab.search"  # what made the study: space, sampler, direction, objective
JOURNAL_SUFFIX = ".journal"


def model_search_space(cfg: DictConfig, trial: Trial) -> None:
    """Suggest each of MODEL_RANGES's fields that the chosen model has (LeNet-5 as in 1998
    has no dropout); `custom_search_space` of conf/hparams_search/fashion_optuna.yaml."""
    for key, (low, high) in MODEL_RANGES.items():
        if key in cfg.model:
            trial.suggest_float(f"model.{key}", low, high)


def open_storage(storage: str) -> BaseStorage | str:
    """A `*.journal` path as Optuna's journal file storage (safe for many processes at once);
    anything else is an RDB URL for Optuna (sqlite:///..., postgresql://...)."""
    if not storage.endswith(JOURNAL_SUFFIX):
        return storage
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    Path(storage).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(storage))


# hydra.sweeper.pruner -> Optuna's pruner class
PRUNERS = {
    "none": "NopPruner",
    "median": "MedianPruner",
    "successive_halving": "SuccessiveHalvingPruner",
    "hyperband": "HyperbandPruner",
}


def make_pruner(name: str, args: dict[str, Any]) -> Any:
    """Optuna's pruner `name` (a key of PRUNERS) with its keyword arguments."""
    import optuna

    return getattr(optuna.pruners, PRUNERS[name])(**args)


class TrialReporter(RunHook):
    """After each epoch: the val accuracy to the trial, and the pruner's verdict to the run.
    After the last epoch the pruner is not asked: stopping then saves nothing, and the trial
    that trained every epoch is completed, with its test accuracy."""

    def __init__(self, settings: TrialConfig) -> None:
        import optuna

        assert settings.storage and settings.study and settings.trial is not None
        study = optuna.load_study(study_name=settings.study, storage=open_storage(settings.storage))
        spec = study.user_attrs.get(PRUNER_ATTR, {"name": "none", "args": {}})
        study.pruner = make_pruner(spec["name"], spec["args"])
        (frozen,) = [t for t in study.get_trials(deepcopy=False) if t.number == settings.trial]
        self.trial = optuna.trial.Trial(study, frozen._trial_id)
        self.reported = set(frozen.intermediate_values)
        self.pruner = spec["name"]
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


def search_hooks(settings: TrialConfig) -> list[RunHook]:
    """The trial reporter when the run is a search's trial, else nothing."""
    return [TrialReporter(settings)] if settings.trial is not None else []
