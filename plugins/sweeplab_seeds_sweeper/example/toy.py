"""A Hydra app whose "accuracy" has a known truth, for trying the sweeper in seconds:

    python toy.py -m hydra/sweeper=sweeplab_seeds large=0,1 none=0,1 small=0,1 \
        hydra.sweeper.detect=0.01

`large` adds 5 points, `none` nothing, `small` 0.4 points; each seed responds to each level in
its own way (spreads 0.2, 0.05 and 0.4 points), as real seeds do.
"""

import time
from dataclasses import dataclass

import hydra
import numpy as np
from hydra.core.config_store import ConfigStore

EFFECTS = {"large": (0.05, 0.002), "none": (0.0, 0.0005), "small": (0.004, 0.004)}  # (effect, sd)


@dataclass
class Toy:
    large: int = 0
    none: int = 0
    small: int = 0
    seed: int = 0
    sleep: float = 0.0  # seconds per job (to interrupt a sweep in a test)
    fail_seed: int = -1  # this seed's jobs raise


ConfigStore.instance().store(name="toy", node=Toy)


def accuracy(cfg: Toy) -> float:
    value = 0.8
    for index, (key, (effect, spread)) in enumerate(EFFECTS.items()):
        level = int(getattr(cfg, key))
        response = np.random.default_rng([cfg.seed, index, level]).normal(0.0, spread)
        value += effect * level + response
    return float(value)


@hydra.main(version_base="1.3", config_path=None, config_name="toy")
def main(cfg: Toy) -> float:
    time.sleep(cfg.sleep)
    if cfg.seed == cfg.fail_seed:
        raise RuntimeError(f"seed {cfg.seed} fails, as asked")
    return accuracy(cfg)


if __name__ == "__main__":
    main()
