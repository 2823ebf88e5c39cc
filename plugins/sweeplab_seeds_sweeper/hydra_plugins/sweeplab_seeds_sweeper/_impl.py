"""The rounds behind `hydra/sweeper=sweeplab_seeds`.

Round 1 runs every configuration of the grid on seeds 0 .. min_seeds-1 (or the seeds the grid
lists). After each round every comparison (each level of each swept key against the key's
first level, per seed, averaged over the other keys: the seed as the unit) is decided or not
by `sequential.look`; the next seed goes only to the configurations an open comparison needs.
The sweep stops when every comparison is decided or has had max_seeds seeds. A round is one
batch through the configured launcher. Each job's result is on disk as the job ends
(`_records`), so the same command after a crash continues where it was, and decisions depend
on the results only, never on the launcher or on how often the command was started.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.types import HydraContext, TaskFunction
from hydra_plugins.sweeplab_seeds_sweeper import DECISIONS, RECORDS
from hydra_plugins.sweeplab_seeds_sweeper._records import (
    COMPLETED,
    FAILED,
    Record,
    RecordingTask,
    job_key,
    read_records,
)
from hydra_plugins.sweeplab_seeds_sweeper._sequential import Missing, Round, looks, replay
from omegaconf import DictConfig, OmegaConf

NAME = "sweeplab_seeds"


class SeedsError(Exception):
    """A setting or a grid the sweeper cannot run; one line that says how to fix it."""


@dataclass
class Grid:
    """The sweep the command asks for: swept keys and their values (the first is the
    baseline), the overrides every job shares, and the first round's seeds."""

    keys: list[str]  # as written, with any +/~ prefix
    values: list[list[str]]
    fixed: list[str]
    first_seeds: list[int]

    @property
    def factors(self) -> list[str]:
        return [name(key) for key, values in zip(self.keys, self.values, strict=True)
                if len(values) > 1]  # fmt: skip

    def configurations(self) -> list[dict[str, str]]:
        return [dict(zip(map(name, self.keys), combo, strict=True))
                for combo in itertools.product(*self.values)]  # fmt: skip


def name(key: str) -> str:
    return key.lstrip("+~")


def parse_grid(arguments: list[str], params: dict[str, Any] | None, seed_key: str,
               min_seeds: int) -> Grid:  # fmt: skip
    """The grid from hydra.sweeper.params and the command line (which wins), parsed by Hydra's
    own override parser."""
    by_key = {str(k): f"{k}={v}" for k, v in (params or {}).items()}
    for text in arguments:
        by_key[name(text.split("=", 1)[0])] = text
    parsed = OverridesParser.create().parse_overrides(list(by_key.values()))
    keys, values, fixed, seeds = [], [], [], None
    for override in parsed:
        line = override.input_line or ""
        key = line.split("=", 1)[0]
        if name(key) == seed_key:
            listed = list(override.sweep_string_iterator()) if override.is_sweep_override() else [
                override.value()
            ]  # fmt: skip
            try:
                seeds = [int(str(seed)) for seed in listed]
            except ValueError:
                raise SeedsError(f"{seed_key}={listed}: seeds must be whole numbers") from None
        elif override.is_sweep_override():
            keys.append(key)
            values.append([str(v) for v in override.sweep_string_iterator()])
        else:
            fixed.append(line)
    return Grid(keys, values, fixed, seeds if seeds is not None else list(range(min_seeds)))


class Rounds:
    def __init__(self, settings: dict[str, Any], hydra_context: HydraContext | None,
                 task_function: TaskFunction | None, config: DictConfig) -> None:  # fmt: skip
        """`hydra_context` and `task_function` None: a plan only (a dry run), no launcher."""
        self.settings = settings
        self.config = config
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        self.launcher: Any = None
        if hydra_context is not None and task_function is not None:
            self.launcher = Plugins.instance().instantiate_launcher(
                config=config, hydra_context=hydra_context,
                task_function=RecordingTask(task_function, str(self.sweep_dir)),
            )  # fmt: skip
        self.seed_key = str(settings.get("seed_key", "seed"))
        self.min_seeds, self.max_seeds = int(settings["min_seeds"]), int(settings["max_seeds"])
        detect = settings.get("detect")
        self.detect = float(detect) if detect is not None else None
        self.alpha = float(settings.get("alpha", 0.05))

    # --- the plan --------------------------------------------------------------------------

    def grid(self, arguments: list[str]) -> Grid:
        params = self.settings.get("params")
        params = OmegaConf.to_container(params) if isinstance(params, DictConfig) else params
        grid = parse_grid(arguments, params, self.seed_key, self.min_seeds)
        first = len(grid.first_seeds)
        if first < 2 or self.max_seeds < first or not 0 < self.alpha < 1:
            raise SeedsError(
                f"min_seeds={first}, max_seeds={self.max_seeds}, alpha={self.alpha}: need "
                "2 <= min_seeds <= max_seeds (a comparison needs two seeds) and 0 < alpha < 1"
            )
        if not grid.factors:
            raise SeedsError("nothing to compare: sweep at least one key over two values "
                             "(key=a,b), besides the seeds")  # fmt: skip
        return grid

    def job(self, grid: Grid, config: dict[str, str], seed: int) -> list[str]:
        """A job's overrides, always in the same order (its record's key)."""
        swept = [f"{key}={config[name(key)]}" for key in grid.keys]
        return [*grid.fixed, *swept, f"{self.seed_key}={seed}"]

    def plan(self, grid: Grid, records: dict[str, Record]) -> tuple[list[Round], Round | None]:
        """The rounds the records complete, and the round to run next (`sequential.replay`)."""
        configurations = grid.configurations()

        def value_of(index: int, seed: int) -> float | None:
            record = records.get(job_key(self.job(grid, configurations[index], seed)))
            if record is None:
                raise Missing
            return record.value if record.status == COMPLETED else None

        baselines = {name(k): v[0] for k, v in zip(grid.keys, grid.values, strict=True)}
        return replay(value_of, configurations, grid.factors, baselines, grid.first_seeds,
                      self.max_seeds, self.detect, self.alpha)  # fmt: skip

    # --- running ---------------------------------------------------------------------------

    def run(self, arguments: list[str]) -> list[Any]:
        try:
            grid = self.grid(arguments)
        except SeedsError as err:
            print(f"{NAME}: error: {err}", file=sys.stderr)
            sys.exit(2)
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, self.sweep_dir / "multirun.yaml")  # as Hydra's own sweeper
        returns: list[Any] = []
        with _only_command(self.sweep_dir) as alone:
            if not alone:
                print(f"{NAME}: another command is running this sweep ({self.sweep_dir}); "
                      "nothing done here", file=sys.stderr)  # fmt: skip
                return returns
            configurations = grid.configurations()
            while True:
                records = read_records(self.sweep_dir)
                done, next_round = self.plan(grid, records)
                if done:
                    self.write_decisions(done[-1].decisions)
                if next_round is None:
                    self.report_end(grid, done, records)
                    return returns
                jobs = [
                    self.job(grid, configurations[index], seed)
                    for index in next_round.configurations for seed in next_round.seeds
                    if job_key(self.job(grid, configurations[index], seed)) not in records
                ]  # fmt: skip
                print(next_round.line(len(configurations), done[-1].decisions if done else None))
                batch = self.launcher.launch(jobs, initial_job_idx=len(records))
                returns.append(batch)
                _record_unrecorded(self.sweep_dir, jobs, batch)

    def write_decisions(self, table: pd.DataFrame) -> None:
        path = self.sweep_dir / DECISIONS
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        table.to_csv(tmp, index=False)
        tmp.replace(path)

    def report_end(self, grid: Grid, done: list[Round], records: dict[str, Record]) -> None:
        table = done[-1].decisions
        failed = [r for r in records.values() if r.status == FAILED]
        runs = sum(1 for r in records.values() if r.status == COMPLETED)
        k = looks(len(grid.first_seeds), self.max_seeds)
        print(f"{NAME}: {len(done)} round(s), {runs} runs, {len(failed)} failed; decisions "
              f"(alpha {self.alpha:g} over {k} looks, Holm within each), "
              f"in {self.sweep_dir / DECISIONS}:")  # fmt: skip
        for row in table.itertuples():
            print(f"  {row.factor}={row.level}: {row.verdict}, {row.mean_diff:+.4g} "
                  f"[{row.ci_low:+.4g}, {row.ci_high:+.4g}] ({int(row.n)} seeds)")  # fmt: skip
        for record in failed:
            print(f"  failed: {' '.join(record.overrides)}: {record.error}", file=sys.stderr)


def _record_unrecorded(sweep_dir: Path, jobs: list[list[str]], batch: Any) -> None:
    """A job that ended without its own record (killed by its launcher before the task ran):
    failed, from what the launcher says."""
    records = read_records(sweep_dir)
    for overrides, job in zip(jobs, batch, strict=False):
        if job_key(overrides) in records:
            continue
        try:
            error = job._return_value  # Hydra keeps a failed task's exception there
        except Exception:
            error = None
        Record(overrides, FAILED, None, f"{type(error).__name__}: {error}".splitlines()[0]
               if error is not None else "no result").write(sweep_dir)  # fmt: skip


@contextmanager
def _only_command(sweep_dir: Path) -> Iterator[bool]:
    """Whether this command is the only one running the sweep (an OS lock, freed however the
    process ends)."""
    folder = sweep_dir / RECORDS
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        yield False
        return
    try:
        yield True
    finally:
        os.close(fd)


def next_round(config: DictConfig, arguments: list[str]) -> tuple[list[Round], list[list[str]]]:
    """For a dry run: the rounds the sweep folder's results complete, and the jobs of the next
    round (none when the sweep is over), for the sweep `arguments` (the command line, less
    what only the dry run has). Runs nothing, writes nothing."""
    rounds = Rounds(dict(config.hydra.sweeper), None, None, config)
    grid = rounds.grid(arguments)
    records = read_records(rounds.sweep_dir)
    done, coming = rounds.plan(grid, records)
    configurations = grid.configurations()
    jobs = [] if coming is None else [
        rounds.job(grid, configurations[index], seed)
        for index in coming.configurations for seed in coming.seeds
        if job_key(rounds.job(grid, configurations[index], seed)) not in records
    ]  # fmt: skip
    return done, jobs
