"""The sweeper Hydra instantiates for `hydra/sweeper=sweeplab_optuna`: a thin shell whose work
(and Optuna's import) happens in `_impl.Search` once a search starts."""

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class SweeplabOptunaSweeper(Sweeper):
    """Optuna's ask-and-tell over Hydra's launchers, its study in the sweep folder."""

    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self.search: Any = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        from hydra_plugins.sweeplab_optuna_sweeper._impl import Search  # imports Optuna

        self.search = Search(self.settings, hydra_context, task_function, config)

    def sweep(self, arguments: list[str]) -> None:
        """Run the search; None, as hydra-optuna-sweeper's sweep returns (its results are in
        the study, optimization_results.yaml and the console)."""
        self.search.run(arguments)
