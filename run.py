"""sweeplab's entry point: `python run.py [overrides]`, `python run.py -m [sweep overrides]`."""

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from sweeplab.config import register_configs
from sweeplab.errors import SweeplabError
from sweeplab.modes import run_mode


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Run one job; return best val accuracy (what a sweeper such as Optuna maximises)."""
    try:
        result = run_mode(cfg, Path(HydraConfig.get().runtime.output_dir))
    except SweeplabError as err:
        print(f"sweeplab: error: {err}", file=sys.stderr)
        sys.exit(2)
    return result.get("best_val_accuracy")


if __name__ == "__main__":
    register_configs()
    main()
