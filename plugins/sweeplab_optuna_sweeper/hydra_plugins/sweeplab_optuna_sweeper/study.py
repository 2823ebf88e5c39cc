"""The study's storage and what the sweeper stores in it, for the sweeper, for the tasks it
launches (`trial.current_trial`) and for readers such as reports.

Optuna is imported inside the functions: Hydra imports this module whenever any app starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optuna import Study
    from optuna.pruners import BasePruner
    from optuna.storages import BaseStorage

JOURNAL_SUFFIX = ".journal"
# The study's user attributes, flat so that optuna-dashboard shows them as they are.
PRUNER = "pruner"  # the pruner's name; its arguments as "pruner.<arg>"
SEARCH = "search."  # what made the study: "search.space.<key>", "search.sampler", ...
# A trial's user attributes
OVERRIDES = "overrides"  # its job's overrides, to launch it again as it was
FOLDER = "folder"  # its job's output folder
STATUS = "status"  # completed, pruned or failed, as its job ended
ERROR = "error"  # a failed trial's one-line reason

# hydra.sweeper.pruner -> Optuna's pruner class
PRUNERS = {
    "none": "NopPruner",
    "median": "MedianPruner",
    "successive_halving": "SuccessiveHalvingPruner",
    "hyperband": "HyperbandPruner",
}


def open_storage(storage: str) -> BaseStorage | str:
    """A `*.journal` path as Optuna's journal file storage (safe for many processes at once);
    anything else is an RDB URL for Optuna (sqlite:///..., postgresql://...)."""
    if not storage.endswith(JOURNAL_SUFFIX):
        return storage
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    Path(storage).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(storage))


def load_study(storage: str, study_name: str) -> Study:
    """The stored study, with the pruner its search chose (Optuna does not store pruners)."""
    import optuna

    study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
    name, args = pruner_of(study.user_attrs)
    study.pruner = make_pruner(name, args)
    return study


def sweep_study(sweep_dir: Path, storage: str | None, study_name: str) -> Study | None:
    """A sweep's study as its search stored it (the sweep folder's journal unless `storage`
    names another), or None while it holds none yet. Nothing is created."""
    where = storage or str(sweep_dir / f"study{JOURNAL_SUFFIX}")
    if where.endswith(JOURNAL_SUFFIX) and not Path(where).is_file():
        return None
    try:
        return load_study(where, study_name)
    except KeyError:  # Optuna: no study of that name there
        return None


def make_pruner(name: str, args: dict[str, Any]) -> BasePruner:
    """Optuna's pruner `name` (a key of PRUNERS) with its keyword arguments."""
    import optuna

    return getattr(optuna.pruners, PRUNERS[name])(**args)


def pruner_attrs(name: str, args: dict[str, Any]) -> dict[str, Any]:
    """The study's user attributes that record its pruner."""
    return {PRUNER: name, **{f"{PRUNER}.{key}": value for key, value in args.items()}}


def pruner_of(attrs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The pruner's name and arguments recorded in a study's user attributes."""
    prefix = f"{PRUNER}."
    args = {key[len(prefix) :]: value for key, value in attrs.items() if key.startswith(prefix)}
    return str(attrs.get(PRUNER, "none")), args
