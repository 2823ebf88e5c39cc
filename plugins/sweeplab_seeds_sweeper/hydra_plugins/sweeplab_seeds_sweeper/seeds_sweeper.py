"""The sweeper Hydra instantiates for `hydra/sweeper=sweeplab_seeds`: a thin shell whose work
(and the statistics' imports) happens in `_impl.Rounds` once a sweep starts."""

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class SeedsSweeper(Sweeper):
    """Every configuration on a few seeds, then more seeds only where a comparison is open."""

    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self.rounds: Any = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        from hydra_plugins.sweeplab_seeds_sweeper._impl import Rounds  # scipy, pandas

        self.rounds = Rounds(self.settings, hydra_context, task_function, config)

    def sweep(self, arguments: list[str]) -> Any:
        return self.rounds.run(arguments)
