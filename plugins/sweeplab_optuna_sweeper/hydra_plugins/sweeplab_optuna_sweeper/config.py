"""The sweeper's settings (`hydra/sweeper=sweeplab_optuna`) and its samplers
(`hydra/sweeper/sampler=tpe|random|grid|cmaes|nsgaii|qmc|gp`), registered in Hydra's
ConfigStore under the names Hydra's own Optuna sweeper uses, so a config written for that
sweeper composes here unchanged.

No Optuna import here: Hydra imports every installed plugin when any app starts. (No
`from __future__ import annotations` either: Hydra's plugin scan imports this module without
a sys.modules entry, where dataclasses cannot resolve string annotations.)
"""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

PROVIDER = "sweeplab_optuna_sweeper"

# Each sampler node is a plain dict, not a dataclass, so that a config may give the sampler
# any argument its class takes (`n_startup_trials`, `multivariate`, `constant_liar`, ...).
# The keys listed here can be set from the command line without `+`; a null argument is
# left to Optuna's default. `name` is the short form: `sampler: {name: random, seed: 0}`.
SAMPLER_NODES: dict[str, dict[str, Any]] = {
    "tpe": {"_target_": "optuna.samplers.TPESampler", "n_startup_trials": None,
            "n_ei_candidates": None, "multivariate": None, "group": None,
            "constant_liar": None},
    "random": {"_target_": "optuna.samplers.RandomSampler"},
    "grid": {"_target_": "optuna.samplers.GridSampler"},  # its grid: from `params`
    "cmaes": {"_target_": "optuna.samplers.CmaEsSampler", "sigma0": None,
              "restart_strategy": None, "use_separable_cma": None},
    "nsgaii": {"_target_": "optuna.samplers.NSGAIISampler", "population_size": None,
               "mutation_prob": None, "crossover_prob": None, "swapping_prob": None},
    "qmc": {"_target_": "optuna.samplers.QMCSampler", "qmc_type": None, "scramble": None},
    "gp": {"_target_": "optuna.samplers.GPSampler", "n_startup_trials": None,
           "deterministic_objective": None},
    # Optuna 4 removed MOTPESampler; choosing it gets one line saying what replaces it.
    "motpe": {"_target_": "optuna.samplers.MOTPESampler"},
}  # fmt: skip


@dataclass
class SweeperConf:
    _target_: str = "hydra_plugins.sweeplab_optuna_sweeper.optuna_sweeper.SweeplabOptunaSweeper"
    defaults: list[Any] = field(default_factory=lambda: [{"sampler": "tpe"}])
    _recursive_: bool = False  # the sampler node reaches the sweeper as config, not object
    sampler: Any = MISSING  # a node of hydra/sweeper/sampler, or {name: ..., seed: ...}
    # maximize or minimize, or a list of them for a multi-objective study (the task then
    # returns a tuple of that length). Hydra's Optuna sweeper minimises by default.
    direction: Any = "maximize"
    # What the objectives are called in the study (optuna-dashboard's axis names): one name,
    # or a list as long as `direction`; null leaves Optuna's "Objective 0".
    metric_names: Any = None
    # How the console prints the objectives' values: a Python format spec for all (".2%"), or
    # one per metric name ({val_accuracy: ".2%", params: ",.0f"}); null: ".6g".
    value_format: Any = None
    step_name: str = "step"  # what the task's reported steps are, in the progress lines
    study_name: str = "sweeplab"
    # null: Optuna's journal file <sweep dir>/study.journal, which many processes (and SLURM
    # jobs on a shared file system) use at once; else a *.journal path or an RDB URL
    storage: Any = None
    n_trials: int = 20  # in all, across restarts and workers (a grid: at most its size)
    n_jobs: int = 1  # trials at once in this command (each asks anew as one ends)
    # Stop (exit 1) once more than this share of this command's finished trials failed.
    max_failure_rate: float = 0.0
    # null: median when there is one objective (Optuna cannot prune several); none, median,
    # successive_halving, hyperband. Only a task that reports (current_trial()) is pruned.
    pruner: str | None = None
    pruner_args: dict[str, Any] = field(default_factory=dict)  # Optuna's, e.g. n_warmup_steps
    params: dict[str, str] | None = None  # key: interval(...), choice(...), range(...), ...
    custom_search_space: str | None = None  # "module.function" called with (cfg, trial)
    confirm: int = 0  # then run the K best configurations again, on new values of confirm_key
    confirm_seeds: int = 3
    confirm_key: str = "seed"


def register() -> None:
    """Put the sweeper and its samplers in Hydra's ConfigStore."""
    store = ConfigStore.instance()
    store.store(group="hydra/sweeper", name="sweeplab_optuna", node=SweeperConf,
                provider=PROVIDER)  # fmt: skip
    for name, node in SAMPLER_NODES.items():
        args = {} if name == "motpe" else {"seed": None}
        store.store(group="hydra/sweeper/sampler", name=name,
                    node={**node, **args, "name": None}, provider=PROVIDER)  # fmt: skip


register()
