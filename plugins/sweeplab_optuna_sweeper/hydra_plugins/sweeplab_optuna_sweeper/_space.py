"""The search space: sweep overrides in Hydra's grammar as Optuna's distributions, read as
Hydra's Optuna sweeper reads them (`range(a, b)` includes `b`; a float range is a stepped
float distribution), and the grid a grid sampler walks."""

from __future__ import annotations

import math
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override, RangeSweep, Transformer
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import Trial


class SearchError(Exception):
    """Bad search settings, found before any trial; the message says what to change."""


def distribution(override: Override) -> BaseDistribution:
    """A sweep override as Optuna's distribution."""
    value = override.value()
    key = override.get_key_element()
    if override.is_choice_sweep():
        return CategoricalDistribution(list(override.sweep_iterator(Transformer.encode)))
    if override.is_range_sweep():
        assert isinstance(value, RangeSweep)
        start, stop, step = value.start, value.stop, value.step
        if value.shuffle:
            return CategoricalDistribution(list(override.sweep_iterator(Transformer.encode)))
        if step is None or step <= 0 or start is None or stop is None or start >= stop:
            raise SearchError(f"{key}: {override.input_line} is empty: range(start, stop) needs "
                              "start < stop and a positive step")  # fmt: skip
        if any(isinstance(v, float) for v in (start, stop, step)):
            return FloatDistribution(float(start), float(stop), step=float(step))
        return IntDistribution(int(start), int(stop), step=int(step))  # stop included
    if override.is_interval_sweep():
        assert isinstance(value, IntervalSweep)
        low, high, log_scale = value.start, value.end, "log" in value.tags
        if low is None or high is None or not low < high:
            raise SearchError(f"{key}: interval({low}, {high}) is empty or inverted: give "
                              "interval(low, high) with low < high")  # fmt: skip
        if log_scale and low <= 0:
            raise SearchError(f"{key}: tag(log, interval({low}, {high})) needs bounds > 0")
        if isinstance(low, int) and isinstance(high, int):
            return IntDistribution(low, high, log=log_scale)
        return FloatDistribution(float(low), float(high), log=log_scale)
    raise SearchError(f"{key}: {override.input_line} is not a search space: use interval(...), "
                      "choice(...), range(...) or tag(log, interval(...))")  # fmt: skip


def parse(lines: list[str]) -> tuple[dict[str, BaseDistribution], list[str]]:
    """The searched keys' distributions and the fixed overrides, from `params` then the
    command line (a key given twice: the later wins)."""
    try:
        parsed = OverridesParser.create().parse_overrides(lines)
    except Exception as err:
        raise SearchError(f"hydra.sweeper.params: {str(err).splitlines()[0]}") from err
    by_key = {override.get_key_element(): override for override in parsed}
    space = {key: distribution(o) for key, o in by_key.items() if o.is_sweep_override()}
    fixed = [str(o.input_line) for o in by_key.values() if not o.is_sweep_override()]
    return space, fixed


def suggest(trial: Trial, key: str, dist: BaseDistribution) -> Any:
    """Ask the trial for `key` from `dist` through Optuna's public suggest API."""
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(key, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(key, dist.low, dist.high, step=dist.step, log=dist.log)
    assert isinstance(dist, FloatDistribution)
    return trial.suggest_float(key, dist.low, dist.high, step=dist.step, log=dist.log)


def grid(space: dict[str, BaseDistribution]) -> dict[str, list[Any]]:
    """Every point of each key's distribution, for Optuna's grid sampler."""
    points: dict[str, list[Any]] = {}
    for key, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            points[key] = list(dist.choices)
        elif isinstance(dist, IntDistribution) and not dist.log:
            points[key] = list(range(dist.low, dist.high + 1, dist.step))
        elif isinstance(dist, FloatDistribution) and dist.step is not None:
            count = math.floor((dist.high - dist.low) / dist.step + 1e-9) + 1
            points[key] = [round(dist.low + i * dist.step, 12) for i in range(count)]
        else:
            raise SearchError(f"the grid sampler needs choice(...) or range(...) for every "
                              f"key; {key} is an interval")  # fmt: skip
    return points


def grid_size(points: dict[str, list[Any]]) -> int:
    """How many configurations the grid holds."""
    return math.prod(len(values) for values in points.values())


def describe(dist: BaseDistribution) -> str:
    """A distribution in a few words, for the study's attributes and the console."""
    if isinstance(dist, CategoricalDistribution):
        return f"choice of {', '.join(map(str, dist.choices))}"
    assert isinstance(dist, IntDistribution | FloatDistribution)
    kind = "int" if isinstance(dist, IntDistribution) else "float"
    step = f", step {dist.step}" if dist.step not in (None, 1) else ""
    return f"{kind} in [{dist.low}, {dist.high}]{step}{', log' if dist.log else ''}"
