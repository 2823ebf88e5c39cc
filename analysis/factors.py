"""What a report compares: the factors the user swept, read from Hydra's override files.

A factor is a key the sweep's jobs set to different values on their command lines (each job's
`.hydra/overrides.yaml`: a sweep's axes, a search's searched keys), the seed aside (it is the
replicate) and the keys that do not change results. A config group (`model=lenet5,lenet5_bn`)
is one factor whose levels are the choices as the user wrote them; a key
(`regularization.weight_decay=0,1e-4`) is one whose levels are its values.

Beside the factors: the config leaves that change with each factor's levels (a preset changes
several), and the leaves that vary across the runs although no factor explains them (sweeps
pooled from different code or defaults). Comparisons never credit those to a factor; they pair
only runs that agree on them. Run folders without Hydra's override files fall back to
inferring factors from the leaves that vary (`stats.swept_keys`), and say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from analysis.collect import config_columns, overrides_of, runtime_columns
from analysis.comparisons import REPLICATE
from analysis.stats import swept_keys

# Override keys that never name a factor: Hydra's own settings, and keys a study file or a
# search sets for its own bookkeeping (they are runtime keys as well).
NOT_FACTORS = ("hydra.", "hydra/", "search.")


@dataclass
class Factors:
    """The factors of a report and what they imply."""

    keys: list[str]  # columns of the runs frame, in the order the sweeps gave them
    inferred: bool = False  # True: no override files; factors inferred from varying leaves
    # factor -> level -> {leaf: (value at the baseline level, value at this level)}
    changes: dict[str, dict[str, dict[str, tuple[object, object]]]] = field(default_factory=dict)
    unexplained: list[str] = field(default_factory=list)  # leaves that vary, no factor why
    # a key asked for (--rows, --cols) that a factor already splits the same way: that factor
    aliases: dict[str, str] = field(default_factory=dict)


def swept_factors(runs: pd.DataFrame, required: list[str]) -> Factors:
    """The factors of `runs` (one row per run, as `collect.load_runs` gives) and their leaves."""
    runtime = runtime_columns(runs)
    overrides = [overrides_of(runs, path) for path in runs["path"]]
    if any(o is None for o in overrides):
        keys = swept_keys(runs, config_columns(runs), required, runtime)
        return Factors(keys=keys, inferred=True)
    keys: list[str] = []
    for job in overrides:
        assert job is not None
        for key in job:
            if key in keys or key == REPLICATE or key in runtime or key.startswith(NOT_FACTORS):
                continue
            # a group's column holds its option (`model`), a key's its value
            if key in runs and runs[key].astype(str).nunique() > 1:
                keys.append(key)
    aliases = {}
    for key in required:
        twin = next((f for f in keys if key not in keys and _same_split(runs, f, key)), None)
        if twin is not None:  # `--rows variant` where the group lenet_variant sets it
            aliases[key] = twin
        elif key not in keys:
            keys.append(key)
    return Factors(keys=keys, unexplained=_unexplained(runs, keys, runtime), aliases=aliases)


def _same_split(runs: pd.DataFrame, a: str, b: str) -> bool:
    """Whether keys `a` and `b` split the runs into the same groups (each determines the
    other), so that they are one factor under two names."""
    pair = runs[[a, b]].astype(str)
    return bool(
        (pair.groupby(a)[b].nunique() <= 1).all() and (pair.groupby(b)[a].nunique() <= 1).all()
    )


def _varying_leaves(runs: pd.DataFrame, factors: list[str], runtime: list[str]) -> list[str]:
    """Config leaves that differ between runs, other than the factors, seed and runtime keys."""
    return [
        key
        for key in config_columns(runs)
        if key not in factors and key != REPLICATE and key not in runtime
        and runs[key].astype(str).nunique() > 1
    ]  # fmt: skip


def _unexplained(runs: pd.DataFrame, factors: list[str], runtime: list[str]) -> list[str]:
    """Leaves that vary within a group of runs that share every factor's level."""
    leaves = _varying_leaves(runs, factors, runtime)
    if not factors:
        return leaves
    grouped = runs.astype({key: str for key in [*leaves, *factors]}).groupby(factors, dropna=False)
    return [leaf for leaf in leaves if (grouped[leaf].nunique() > 1).any()]


def level_changes(
    runs: pd.DataFrame, factors: Factors, baselines: dict[str, object]
) -> dict[str, dict[str, dict[str, tuple[object, object]]]]:
    """Per factor and level: the leaves whose value moves from the baseline level's runs to
    this level's runs (besides the factor's own leaf), as (baseline value, value)."""
    runtime = runtime_columns(runs)
    leaves = [
        leaf
        for leaf in _varying_leaves(runs, factors.keys, runtime)
        if leaf not in factors.unexplained
    ]
    changes: dict[str, dict[str, dict[str, tuple[object, object]]]] = {}
    for factor in factors.keys:
        if factor not in baselines:
            continue
        text = runs[factor].astype(str)
        base = runs[text == str(baselines[factor])]
        for level in sorted(set(text) - {str(baselines[factor])}):
            at_level = runs[text == level]
            moved = {}
            for leaf in leaves:
                before, after = set(base[leaf].astype(str)), set(at_level[leaf].astype(str))
                if len(before) == 1 and len(after) == 1 and before != after:
                    moved[leaf] = (base[leaf].iloc[0], at_level[leaf].iloc[0])
            if moved:
                changes.setdefault(factor, {})[level] = moved
    return changes


def describe_changes(factors: Factors, baselines: dict[str, object]) -> list[str]:
    """One line per factor level that changes more than its own leaf."""
    lines = []
    for factor, by_level in factors.changes.items():
        for level, moved in by_level.items():
            leaves = ", ".join(f"{leaf} ({a} → {b})" for leaf, (a, b) in moved.items())
            lines.append(f"- {factor}: {baselines[factor]} → {level} also changes {leaves}")
    return lines
