"""The sweeper's settings checked before any trial, each mistake one line that says what to
change: directions and metric names, the pruner, the sampler (a `_target_` node with any
arguments, or the short form `name` + `seed`)."""

from __future__ import annotations

from typing import Any

import optuna
from hydra.utils import instantiate
from hydra_plugins.sweeplab_optuna_sweeper._space import SearchError, grid
from hydra_plugins.sweeplab_optuna_sweeper.study import PRUNERS
from omegaconf import DictConfig, OmegaConf

# the short form's names (`sampler: {name: random}`) -> Optuna's sampler classes
SAMPLERS = {"tpe": "TPESampler", "random": "RandomSampler", "grid": "GridSampler",
            "cmaes": "CmaEsSampler", "qmc": "QMCSampler", "gp": "GPSampler",
            "nsgaii": "NSGAIISampler", "nsga2": "NSGAIISampler"}  # fmt: skip
# Samplers Optuna removed -> the words of hydra-optuna-sweeper's own error, then ours.
REMOVED = {
    "MOTPESampler": (
        "The 'motpe' sampler was removed in Optuna 4.0. Use 'hydra/sweeper/sampler=tpe' "
        "instead. TPESampler now handles multi-objective optimization. (sweeplab: "
        "hydra/sweeper/sampler=nsgaii is the other sampler for several objectives.)"
    )
}
DIRECTIONS = ("maximize", "minimize")

DEFAULT_FORMAT = ".6g"  # how the console prints an objective's value unless told


def directions(value: Any) -> list[str]:
    """`direction` as a list: one entry per objective."""
    given = list(value) if isinstance(value, list | tuple) or OmegaConf.is_list(value) else [value]
    names = [str(getattr(d, "name", d)).lower() for d in given]
    bad = [name for name in names if name not in DIRECTIONS]
    if not names or bad:
        raise SearchError(f"hydra.sweeper.direction={value}: give maximize or minimize, or a "
                          "list of them for several objectives")  # fmt: skip
    return names


def metric_names(value: Any, count: int) -> list[str] | None:
    """`metric_names` as a list as long as the directions, or None."""
    if value is None:
        return None
    names = (
        [str(v) for v in value]
        if OmegaConf.is_list(value) or isinstance(value, list)
        else [str(value)]
    )
    if len(names) != count:
        raise SearchError(f"hydra.sweeper.metric_names={names}: {len(names)} name(s) for "
                          f"{count} objective(s) (hydra.sweeper.direction): give one per "
                          "objective")  # fmt: skip
    return names


def value_formats(value: Any, names: list[str]) -> list[str]:
    """One format spec per objective from `value_format`: null (`.6g`), one spec for all, or
    a mapping from metric name to spec (names it lacks get `.6g`)."""
    if value is None:
        return [DEFAULT_FORMAT] * len(names)
    if OmegaConf.is_dict(value) or isinstance(value, dict):
        specs = [str(value.get(name, DEFAULT_FORMAT)) for name in names]
    else:
        specs = [str(value)] * len(names)
    for spec in specs:
        try:
            format(0.5, spec)
        except ValueError:
            raise SearchError(f"hydra.sweeper.value_format: {spec!r} is not a Python format "
                              "spec for a number; e.g. .6g, .2%, ,.0f") from None  # fmt: skip
    return specs


def pruner_name(value: str | None, objectives: int) -> str:
    """The pruner: null means median for one objective, none for several."""
    if value is None:
        return "median" if objectives == 1 else "none"
    if value not in PRUNERS:
        raise SearchError(f"hydra.sweeper.pruner={value}: use one of {', '.join(PRUNERS)}")
    if objectives > 1 and value != "none":
        raise SearchError(f"hydra.sweeper.pruner={value}: Optuna cannot prune a study of "
                          f"{objectives} objectives; set hydra.sweeper.pruner=none")  # fmt: skip
    return value


def sampler_node(node: DictConfig) -> tuple[str, dict[str, Any]]:
    """The sampler's class path and its given (non-null) arguments."""
    args = {str(k): v for k, v in node.items() if v is not None and str(k) != "_partial_"}
    name, target = args.pop("name", None), args.pop("_target_", None)
    if name is not None:
        if name == "motpe":
            target = "optuna.samplers.MOTPESampler"
        elif name not in SAMPLERS:
            raise SearchError(f"hydra.sweeper.sampler.name={name}: use one of "
                              f"{', '.join(SAMPLERS)}, or a _target_ node")  # fmt: skip
        else:
            target = f"optuna.samplers.{SAMPLERS[name]}"
    if not target:
        raise SearchError("hydra.sweeper.sampler: give a sampler, e.g. "
                          "hydra/sweeper/sampler=tpe or sampler: {name: tpe, seed: 0}")  # fmt: skip
    removed = REMOVED.get(str(target).rsplit(".", 1)[-1])
    if removed:
        raise SearchError(removed)
    return str(target), args


def is_grid(target: str) -> bool:
    return target.rsplit(".", 1)[-1] == "GridSampler"


def make_sampler(
    node: DictConfig, space: dict[str, Any], offset: int = 0
) -> optuna.samplers.BaseSampler:
    """The sampler the node describes, its seed moved by `offset` (several workers)."""
    target, args = sampler_node(node)
    if args.get("seed") is not None and offset:
        args["seed"] = int(args["seed"]) + offset
    extra = {"search_space": grid(space)} if is_grid(target) else {}
    try:
        sampler = instantiate({"_target_": target, **args}, **extra, _convert_="all")
    except Exception as err:
        reason = str(err.__cause__ or err).splitlines()[0]
        raise SearchError(f"hydra.sweeper.sampler: {target} with {args}: {reason}") from err
    if not isinstance(sampler, optuna.samplers.BaseSampler):
        raise SearchError(f"hydra.sweeper.sampler: {target} is not an Optuna sampler")
    return sampler


def describe_sampler(node: DictConfig) -> str:
    """The sampler in a few words, e.g. `TPESampler(seed=0, n_startup_trials=5)`."""
    target, args = sampler_node(node)
    inner = ", ".join(f"{key}={value}" for key, value in sorted(args.items()))
    return f"{target.rsplit('.', 1)[-1]}({inner})"
