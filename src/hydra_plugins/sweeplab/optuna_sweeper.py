"""sweeplab's Optuna sweeper for Hydra (`override /hydra/sweeper: sweeplab_optuna`): its
settings, registered in Hydra's ConfigStore, and a thin `Sweeper` whose work lives in
`_search.py` (Optuna is imported only when a search starts, never when run.py starts).

The keys are those of Hydra's own Optuna sweeper where they mean the same (`direction`,
`study_name`, `storage`, `n_trials`, `n_jobs`, `sampler` with a `seed`, `params` in the
override grammar, `custom_search_space`), plus what it lacks: `pruner` and `pruner_args`,
`confirm` and `confirm_seeds`. (No `from __future__ import annotations` here: Hydra's plugin
scan imports this module without a sys.modules entry, where dataclasses cannot resolve string
annotations.)
"""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class SamplerConf:
    # tpe, random, grid, cmaes, qmc, gp, nsga2 (Optuna's samplers)
    name: str = "tpe"
    seed: int | None = None


@dataclass
class SearchConf:
    _target_: str = "hydra_plugins.sweeplab.optuna_sweeper.SearchSweeper"
    direction: str = "maximize"  # the objective: the run's best validation accuracy
    study_name: str = "sweeplab"
    # null: Optuna's journal file <sweep dir>/study.journal, which many processes (and SLURM
    # jobs on a shared file system) use at once; else a *.journal path or an RDB URL
    storage: str | None = None
    n_trials: int = 20  # in all, across restarts and workers
    n_jobs: int = 1  # trials at once in this command (each asks anew as one ends)
    sampler: SamplerConf = field(default_factory=SamplerConf)
    pruner: str = "median"  # none, median, successive_halving, hyperband
    pruner_args: dict[str, Any] = field(default_factory=dict)  # Optuna's, e.g. n_warmup_steps
    params: dict[str, str] = field(default_factory=dict)  # key: interval(...), choice(...), ...
    custom_search_space: str | None = None  # "module.function(cfg, trial)" for more keys
    confirm: int = 0  # then run the K best configurations again on new seeds
    confirm_seeds: int = 3


ConfigStore.instance().store(
    group="hydra/sweeper", name="sweeplab_optuna", node=SearchConf, provider="sweeplab"
)


class SearchSweeper(Sweeper):
    """Hydra's face of the search: settings in, `_search.Search` does the work."""

    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self.search: Any = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        from hydra_plugins.sweeplab._search import Search  # imports Optuna

        self.search = Search(self.settings, hydra_context, task_function, config)

    def sweep(self, arguments: list[str]) -> Any:
        return self.search.run(arguments)
