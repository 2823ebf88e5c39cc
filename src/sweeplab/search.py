"""Search spaces for Hydra's Optuna sweeper that depend on the model chosen.

`conf/hparams_search/fashion_optuna.yaml` names `model_search_space` as the sweeper's
`custom_search_space`: the sweeper calls it for every trial with the composed config, so a key
is searched only when the chosen model has it (LeNet-5 as in 1998 has no dropout).
"""

from __future__ import annotations

from omegaconf import DictConfig
from optuna.trial import Trial

# model field -> (low, high) of a uniform search, for every model that has the field
MODEL_RANGES = {"dropout": (0.0, 0.5)}


def model_search_space(cfg: DictConfig, trial: Trial) -> None:
    """Suggest each of MODEL_RANGES's fields that the chosen model has."""
    for key, (low, high) in MODEL_RANGES.items():
        if key in cfg.model:
            trial.suggest_float(f"model.{key}", low, high)
