"""The sequential procedure: after each round, every open comparison is tested again on its
seeds so far, at a level that keeps the error rate over all rounds.

Each comparison is looked at once per round it is open, at most K = max_seeds - min_seeds + 1
times. Every look spends alpha / K (Bonferroni over the looks: an alpha-spending function that
spends evenly), and within a look Holm's step-down runs over every comparison of the sweep,
the ones decided earlier counted as rejected (their p taken as 0). Whatever the data, a false
verdict at some look needs, at that look, a true null's fixed-sample p-value below
alpha / (K * its family's true nulls), which has probability at most alpha / K; summed over the
K looks, at most alpha (the union bound: no assumption on how looks correlate). The tests are
exact t-tests at each look's sample size, because every open comparison has all its seeds
0 .. n-1 on all its cells at each look (its configurations get every round's seed).
Conservative next to Pocock's or O'Brien-Fleming's boundaries, which need the looks'
correlation; exact with 2 to 10 seeds, where normal approximations are not.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from hydra_plugins.sweeplab_seeds_sweeper._stats import (
    REPLICATE,
    compare_factors,
    decided,
    finish,
)

VALUE = "value"  # the task's returned number, in the frame of results
COLUMNS = ["factor", "level", "baseline", "n", "mean_diff", "ci_low", "ci_high", "verdict",
           "round", "look_alpha", "p", "p_holm", "p_equiv", "p_equiv_holm"]  # fmt: skip
AT_MAX = "undecided at max_seeds"


def looks(min_seeds: int, max_seeds: int) -> int:
    """How often a comparison can be looked at: once per seed count from min to max."""
    return max_seeds - min_seeds + 1


def look(
    results: pd.DataFrame, factors: Sequence[str], baselines: dict[str, str],
    detect: float | None, look_alpha: float, earlier: pd.DataFrame | None, max_seeds: int,
    round_number: int,
) -> pd.DataFrame:  # fmt: skip
    """Every comparison's verdict after a round: the open ones tested on `results` (columns:
    the factors as text, `seed`, `value`), the ones `earlier` decided carried as they were.
    A comparison still open at `max_seeds` seeds ends `undecided at max_seeds`."""
    raw = compare_factors(results, list(factors), VALUE, baselines, detect=detect,
                          alpha=look_alpha)  # fmt: skip
    raw["level"] = raw["level"].astype(str)
    carried = _final(earlier)
    for index, row in raw.iterrows():
        kept = carried.get((row["factor"], row["level"]))
        if kept is None:
            continue
        for column in ("n", "mean_diff", "ci_low", "ci_high"):
            raw.at[index, column] = kept[column]
        what = "p_equiv" if str(kept["verdict"]).startswith("equivalent") else "p"
        other = "p" if what == "p_equiv" else "p_equiv"
        raw.at[index, what], raw.at[index, other] = 0.0, math.nan
        if not decided(str(kept["verdict"])):  # undecided at max_seeds: out of the family
            raw.at[index, "p"] = raw.at[index, "p_equiv"] = math.nan
    table = finish(raw, detect, look_alpha)
    table["round"], table["look_alpha"] = round_number, look_alpha
    for index, row in table.iterrows():
        kept = carried.get((row["factor"], str(row["level"])))
        if kept is not None:  # a decision is final: its verdict, round and level as it was
            for column in ("verdict", "round", "look_alpha", "p", "p_holm", "p_equiv",
                           "p_equiv_holm"):  # fmt: skip
                table.at[index, column] = kept[column]
        elif not decided(row["verdict"]) and row["n"] >= max_seeds:
            table.at[index, "verdict"] = AT_MAX
    return table[COLUMNS]


def _final(earlier: pd.DataFrame | None) -> dict[tuple[str, str], pd.Series]:
    """The comparisons decided (or closed at max_seeds) before this look."""
    if earlier is None or earlier.empty:
        return {}
    closed = earlier[[decided(v) or v == AT_MAX for v in earlier["verdict"]]]
    return {(row["factor"], str(row["level"])): row for _, row in closed.iterrows()}


def open_comparisons(table: pd.DataFrame) -> pd.DataFrame:
    """The comparisons that want another seed."""
    return table[[not decided(v) and v != AT_MAX for v in table["verdict"]]]


def needed(
    configurations: list[dict[str, str]], table: pd.DataFrame, baselines: dict[str, str]
) -> list[int]:
    """The configurations an open comparison needs: those at its level or its key's baseline
    (whatever the other keys), so that its pairs stay whole on the next seed."""
    wanted = [(row.factor, str(row.level)) for row in open_comparisons(table).itertuples()]
    return [
        index
        for index, config in enumerate(configurations)
        if any(config[key] in (level, str(baselines[key])) for key, level in wanted)
    ]


def results_frame(rows: list[dict[str, object]], factors: Sequence[str]) -> pd.DataFrame:
    """The finished jobs as the statistics read them: factors as text, the seed, the value."""
    frame = pd.DataFrame(rows, columns=[*factors, REPLICATE, VALUE])
    return frame.astype({key: str for key in factors})


@dataclass
class Round:
    number: int
    seeds: list[int]  # the first round's seeds, then one new seed a round
    configurations: list[int]  # indices of the configurations it runs
    decisions: Any = None  # every comparison's verdict after it

    def line(self, total: int, before: pd.DataFrame | None) -> str:
        """The round's console line: its seeds, how many configurations, what is still open."""
        seeds = (f"seed {self.seeds[0]}" if len(self.seeds) == 1
                 else f"seeds {self.seeds[0]}-{self.seeds[-1]}")  # fmt: skip
        share = f"all {total}" if len(self.configurations) == total else (
            f"{len(self.configurations)} of {total}"
        )  # fmt: skip
        text = f"round {self.number}: {seeds} for {share} configurations"
        if before is not None:
            still = open_comparisons(before)
            text += "; undecided: " + ", ".join(
                f"{row.factor}={row.level}, {row.ci_low:+.3g} .. {row.ci_high:+.3g}"
                for row in still.itertuples()
            )  # fmt: skip
        return text


class Missing(Exception):
    """A job of the round has no result yet."""


def replay(
    value_of: Callable[[int, int], float | None], configurations: list[dict[str, str]],
    factors: Sequence[str], baselines: dict[str, str], first_seeds: list[int], max_seeds: int,
    detect: float | None, alpha: float,
) -> tuple[list[Round], Round | None]:  # fmt: skip
    """The rounds that the results so far complete, each with its decisions, and the round to
    run next (None when the sweep is over). `value_of(configuration, seed)` is a job's result
    (None: it failed) or raises Missing. Decisions depend on the results alone."""
    level = alpha / looks(len(first_seeds), max_seeds)
    done: list[Round] = []
    seeds = list(first_seeds)
    round_ = Round(1, list(first_seeds), list(range(len(configurations))))
    ran: set[tuple[int, int]] = set()
    earlier = None
    while True:
        try:
            values = {(i, seed): value_of(i, seed) for i in round_.configurations
                      for seed in round_.seeds}  # fmt: skip
        except Missing:
            return done, round_
        ran.update(values)
        rows = [
            {**{f: configurations[i][f] for f in factors}, REPLICATE: seed, VALUE: value}
            for (i, seed) in sorted(ran)
            if (value := value_of(i, seed)) is not None
        ]
        table = look(results_frame(rows, factors), factors, baselines, detect, level, earlier,
                     max_seeds, round_.number)  # fmt: skip
        round_.decisions = earlier = table
        done.append(round_)
        if open_comparisons(table).empty or len(seeds) >= max_seeds:
            return done, None
        seeds = [*seeds, max(seeds) + 1]  # the next seed, in order
        round_ = Round(round_.number + 1, [seeds[-1]], needed(configurations, table, baselines))
