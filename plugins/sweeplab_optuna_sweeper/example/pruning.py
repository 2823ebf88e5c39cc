"""A task that reports to its trial and can be pruned: python pruning.py -m

The sweeper passes the trial through the job's environment; `current_trial()` is None when
the app runs on its own (python pruning.py), so the same code trains outside a search.
"""

import hydra
import optuna
from hydra_plugins.sweeplab_optuna_sweeper import current_trial
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path="pruning-conf", config_name="config")
def train(cfg: DictConfig) -> float:
    trial = current_trial()
    score = 0.0
    for step in range(cfg.steps):
        score = (step + 1) * (1.0 - abs(cfg.lr - 0.1))  # a "learning curve" best at lr 0.1
        if trial is not None:
            trial.report(score, step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at step {step}")
    return score


if __name__ == "__main__":
    train()
