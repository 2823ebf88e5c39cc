"""The sweeper's settings (`hydra/sweeper=sweeplab_seeds`), registered in Hydra's ConfigStore.

No statistics import here: Hydra imports every installed plugin when any app starts. (No
`from __future__ import annotations` either: Hydra's plugin scan imports this module without a
sys.modules entry, where dataclasses cannot resolve string annotations.)
"""

from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore

PROVIDER = "sweeplab_seeds_sweeper"


@dataclass
class SeedsSweeperConf:
    _target_: str = "hydra_plugins.sweeplab_seeds_sweeper.seeds_sweeper.SeedsSweeper"
    # The grid, as Hydra's basic sweeper takes it: `key: a,b` here, or `key=a,b` on the command
    # line (which wins). Each key's first value is its baseline.
    params: Any = None
    seed_key: str = "seed"  # the key whose values are the seeds (replicates), never a factor
    min_seeds: int = 3  # the first round runs every configuration on seeds 0 .. min_seeds-1
    max_seeds: int = 10  # no comparison gets more seeds than this
    # The smallest difference that matters, in the units of the task's returned number: with
    # it a comparison can also end `equivalent`; without it only `higher` or `lower` decide.
    detect: Any = None
    alpha: float = 0.05  # the family-wise error rate over every comparison and every look


def register() -> None:
    ConfigStore.instance().store(
        group="hydra/sweeper", name="sweeplab_seeds", node=SeedsSweeperConf, provider=PROVIDER
    )


register()
