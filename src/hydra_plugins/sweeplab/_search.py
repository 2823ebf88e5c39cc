"""The search behind `hydra/sweeper=sweeplab_optuna`: Optuna's ask-and-tell over Hydra's
launchers, with the study in the sweep folder.

Every command on the same sweep folder is a worker of one study. A worker asks for one trial
at a time (under a file lock in the sweep folder, so that `n_trials` counts every worker's
trials once), launches it as one job whose folder and number are the trial's, and tells the
study how it ended as soon as it ends: no worker waits for a batch. While it works on a trial
it holds that trial's claim lock; the OS drops the lock when the worker dies however it dies,
so a trial that is RUNNING in the study with a free claim was cut off (a crash, kill -9,
Ctrl-C): the next worker that finds it launches it again, and its run resumes in its folder
from `checkpoints/last.pt` (a run that had finished is skipped and only told). Each trial's
run reports its val accuracy after every epoch (`sweeplab.search.TrialReporter`, a run hook)
and stops when the pruner says so, with `status: pruned`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override, RangeSweep, Transformer
from hydra.core.plugins import Plugins
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)
from optuna.trial import TrialState

from sweeplab.run_folder import Summary
from sweeplab.search import (
    JOURNAL_SUFFIX,
    PRUNER_ATTR,
    PRUNERS,
    SEARCH_ATTR,
    make_pruner,
    open_storage,
)

log = logging.getLogger(__name__)
OVERRIDES_ATTR = "sweeplab.overrides"  # a trial's job overrides, to launch it again as it was
STATE = Path(".sweeplab") / "search"  # in the sweep folder: the ask lock, trials' claim locks
SAMPLERS = {"tpe": "TPESampler", "random": "RandomSampler", "grid": "GridSampler",
            "cmaes": "CmaEsSampler", "qmc": "QMCSampler", "gp": "GPSampler",
            "nsga2": "NSGAIISampler"}  # fmt: skip
OBJECTIVE = "best val accuracy of the run (run.py's return value)"
optuna.logging.set_verbosity(optuna.logging.WARNING)


class SearchError(Exception):
    """Bad search settings, found before any trial; the message says what to change."""


def distribution(override: Override) -> BaseDistribution:
    """A sweep override in Hydra's grammar as Optuna's distribution."""
    value = override.value()
    key = override.get_key_element()
    if override.is_choice_sweep():
        return CategoricalDistribution(
            list(override.sweep_iterator(transformer=Transformer.encode))
        )
    if override.is_range_sweep():
        assert isinstance(value, RangeSweep)
        start, stop, step = value.start, value.stop, value.step
        if value.shuffle or any(isinstance(v, float) for v in (start, stop, step)):
            return CategoricalDistribution(list(override.sweep_iterator(Transformer.encode)))
        if step is None or step <= 0 or start is None or stop is None or start >= stop:
            raise SearchError(f"{key}: {override.input_line} is empty: range(start, stop) needs "
                              "start < stop and a positive step")  # fmt: skip
        return IntDistribution(int(start), int(stop) - int(step), step=int(step))  # stop excluded
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


def suggest(trial: optuna.trial.Trial, key: str, dist: BaseDistribution) -> Any:
    """Ask the trial for `key` from `dist` through Optuna's public suggest API."""
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(key, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(key, dist.low, dist.high, step=dist.step, log=dist.log)
    assert isinstance(dist, FloatDistribution)
    return trial.suggest_float(key, dist.low, dist.high, step=dist.step, log=dist.log)


def quoted(value: str) -> str:
    """A value for Hydra's override grammar, whatever characters a path holds."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@contextmanager
def _flock(path: Path) -> Iterator[None]:
    """An exclusive OS lock on `path` for the block (waits for another holder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        yield


class Search:
    """One worker of the sweep folder's study."""

    def __init__(
        self, settings: Any, hydra_context: HydraContext, task_function: TaskFunction,
        config: DictConfig,
    ) -> None:  # fmt: skip
        self.settings = OmegaConf.create(dict(settings))
        self.config = config
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )
        self.asking = threading.Lock()
        self.seeded = False  # whether this worker has seeded its sampler (at its first ask)

    # --- checked before any trial ------------------------------------------------------------

    def _plan(self, arguments: list[str]) -> None:
        s = self.settings
        if s.n_trials < 1:
            raise SearchError(f"hydra.sweeper.n_trials={s.n_trials}: must be at least 1")
        if s.direction not in ("maximize", "minimize"):
            raise SearchError(f"hydra.sweeper.direction={s.direction}: maximize or minimize")
        if s.sampler.name not in SAMPLERS:
            raise SearchError(f"hydra.sweeper.sampler.name={s.sampler.name}: use one of "
                              f"{', '.join(SAMPLERS)}")  # fmt: skip
        if s.pruner not in PRUNERS:
            raise SearchError(f"hydra.sweeper.pruner={s.pruner}: use one of {', '.join(PRUNERS)}")
        parser = OverridesParser.create()
        lines = [f"{key}={value}" for key, value in (s.params or {}).items()] + list(arguments)
        try:
            parsed = parser.parse_overrides(lines)
        except Exception as err:
            raise SearchError(f"hydra.sweeper.params: {str(err).splitlines()[0]}") from err
        by_key = {override.get_key_element(): override for override in parsed}  # last wins
        self.space = {k: distribution(o) for k, o in by_key.items() if o.is_sweep_override()}
        self.fixed = [o.input_line for o in by_key.values() if not o.is_sweep_override()]
        for key in self.space:
            self._check_key(key)
        self.extend: Callable[[DictConfig, Any], None] | None = None
        if s.custom_search_space:
            self.extend = get_method(s.custom_search_space)
        pruner_name = s.pruner
        if pruner_name != "none" and int(self.config.get("epochs", 2)) < 2:
            print(f"sweeplab: epochs={self.config.epochs}: a pruner needs two epochs or more to "
                  "compare runs; this search runs without pruning", file=sys.stderr)  # fmt: skip
            pruner_name = "none"
        args = OmegaConf.to_container(s.pruner_args) if s.pruner_args else {}
        try:
            self.pruner = make_pruner(pruner_name, args)
        except (TypeError, ValueError) as err:
            raise SearchError(f"hydra.sweeper.pruner_args={args} for {s.pruner}: {err}") from err
        self.pruner_spec = {"name": pruner_name, "args": args}
        self.sampler = self._sampler()
        self.study = self._open_study()

    def _check_key(self, key: str) -> None:
        choices = self.config.hydra.runtime.choices
        if key.lstrip("+") in choices:  # a config group, e.g. model: choice(lenet5,mlp)
            return
        if OmegaConf.select(self.config, key.lstrip("+"), default=KeyError) is KeyError:
            raise SearchError(f"searched key {key!r} is not in the config: check its spelling "
                              "(python run.py --cfg job lists the keys)")  # fmt: skip

    def _sampler(self, offset: int = 0) -> optuna.samplers.BaseSampler:
        """The sampler; its seed moved by `offset` (see `_next_trial`)."""
        name, seed = self.settings.sampler.name, self.settings.sampler.seed
        seed = None if seed is None else seed + offset
        sampler_class = getattr(optuna.samplers, SAMPLERS[name])
        if name != "grid":
            return sampler_class(seed=seed)
        grid = {}
        for key, dist in self.space.items():
            if isinstance(dist, CategoricalDistribution):
                grid[key] = list(dist.choices)
            elif isinstance(dist, IntDistribution) and not dist.log:
                grid[key] = list(range(dist.low, dist.high + 1, dist.step))
            else:
                raise SearchError(f"the grid sampler needs choice(...) or range(...) for every "
                                  f"key; {key} is an interval")  # fmt: skip
        if self.extend is not None:
            raise SearchError("the grid sampler cannot take a custom_search_space: set it to null")
        return sampler_class(grid, seed=seed)

    def _identity(self) -> dict[str, Any]:
        space = {key: distribution_to_json(dist) for key, dist in sorted(self.space.items())}
        return {
            "space": {**space, "custom_search_space": self.settings.custom_search_space},
            "sampler": f"{self.settings.sampler.name} (seed {self.settings.sampler.seed})",
            "direction": self.settings.direction,
            "objective": f"{OBJECTIVE} with {sorted(self.fixed)}",
        }

    def _open_study(self) -> optuna.Study:
        given = self.settings.storage
        where = given or str(self.sweep_dir / f"study{JOURNAL_SUFFIX}")
        try:
            study = optuna.create_study(
                study_name=self.settings.study_name, storage=open_storage(where),
                sampler=self.sampler, pruner=self.pruner, direction=self.settings.direction,
                load_if_exists=True,
            )  # fmt: skip
        except Exception as err:
            reason = f"{type(err).__name__}: {err}".splitlines()[0]
            raise SearchError(f"the study's storage {where} cannot be opened ({reason}): pass "
                              "a writable hydra.sweeper.storage") from err  # fmt: skip
        self.storage = where
        identity, stored = self._identity(), study.user_attrs.get(SEARCH_ATTR)
        if stored is None:
            study.set_user_attr(SEARCH_ATTR, identity)
        elif stored != identity:
            what = [key for key in identity if identity[key] != stored.get(key)]
            verb = "differs" if len(what) == 1 else "differ"
            raise SearchError(
                f"study {self.settings.study_name!r} in {where} was made by another search: its "
                f"{' and '.join(what)} {verb} from this command's: run the same search to "
                "continue it, or pass a new hydra.sweep.dir"
            )
        study.set_user_attr(PRUNER_ATTR, self.pruner_spec)
        return study

    # --- the trials ----------------------------------------------------------------------------

    def run(self, arguments: list[str]) -> list[Any]:
        try:
            self._plan(arguments)
        except SearchError as err:
            print(f"sweeplab: error: {err}", file=sys.stderr)
            sys.exit(2)
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, self.sweep_dir / "multirun.yaml")  # as Hydra's own sweeper
        workers = int(self.settings.n_jobs)
        if workers > 1 and type(self.launcher).__name__ == "BasicLauncher":
            print(
                "sweeplab: hydra.sweeper.n_jobs > 1 needs a parallel launcher "
                "(hydra/launcher=joblib); running one trial at a time",
                file=sys.stderr,
            )
            workers = 1
        if workers == 1:
            self._work()
        else:
            threads = [threading.Thread(target=self._work) for _ in range(workers)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        if self.settings.confirm > 0:
            self._confirm()
        self._write_results()
        return []

    def _claim(self, number: int) -> IO[str] | None:
        """This worker's claim on trial `number` (held until released), or None if taken."""
        path = self.sweep_dir / STATE / "claims" / f"{number}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        file = path.open("a")
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.close()
            return None
        return file

    def _next_trial(self) -> tuple[optuna.trial.Trial | optuna.trial.FrozenTrial, IO[str]] | None:
        """A cut-off trial to finish, else a new one while fewer than n_trials exist."""
        with self.asking, _flock(self.sweep_dir / STATE / "ask.lock"):
            trials = self.study.get_trials(deepcopy=False)
            for trial in trials:
                if trial.state == TrialState.RUNNING and OVERRIDES_ATTR in trial.user_attrs:
                    claim = self._claim(trial.number)
                    if claim is not None:
                        log.info("trial %d was cut off; launching it again", trial.number)
                        return trial, claim
            if len(trials) >= self.settings.n_trials:
                return None
            if not self.seeded:
                # Workers of one study must not draw the same numbers: each seeds its sampler
                # with the seed plus the number of its first trial (0 for a lone command, so
                # one command's search repeats exactly).
                self.study.sampler = self._sampler(offset=len(trials))
                self.seeded = True
            trial = self.study.ask()
            claim = self._claim(trial.number)
            assert claim is not None  # a new number: nobody else has it
            for key, dist in self.space.items():
                suggest(trial, key, dist)
            if self.extend is not None:
                self.extend(self.config, trial)
            params = [f"{key}={value}" for key, value in trial.params.items()]
            trial.set_user_attr(OVERRIDES_ATTR, params)
            return trial, claim

    def _work(self) -> None:
        while (next_trial := self._next_trial()) is not None:
            trial, claim = next_trial
            try:
                self._launch(trial)
            finally:
                claim.close()  # releases the claim

    def _job_overrides(self, params: list[str], number: int) -> list[str]:
        trial = [
            f"search.storage={quoted(self.storage)}",
            f"search.study={quoted(self.settings.study_name)}",
            f"search.trial={number}",
        ]
        return [*params, *self.fixed, *trial]

    def _launch(self, trial: Any) -> None:
        params = trial.user_attrs[OVERRIDES_ATTR]
        (job,) = self.launcher.launch([self._job_overrides(params, trial.number)], trial.number)
        summary = _summary_of(job)
        status = summary.status if summary else "failed"
        try:
            value = float(job.return_value)
        except Exception:  # the job raised: Hydra keeps the exception in the return
            value = math.nan
        storage = self.study._storage
        for key, attr in (("status", status), ("folder", _folder_of(job)),
                          ("train_seconds", summary and summary.train_seconds),
                          ("epochs", summary and summary.epochs_completed)):  # fmt: skip
            storage.set_trial_user_attr(trial._trial_id, key, attr)
        with self.asking, contextlib.suppress(RuntimeError):  # grid's study.stop(): told anyway
            if status == "pruned":
                self.study.tell(trial.number, state=TrialState.PRUNED)
            elif math.isfinite(value):
                self.study.tell(trial.number, value)
            else:
                self.study.tell(trial.number, state=TrialState.FAIL)
        log.info("trial %d: %s, best val accuracy %s", trial.number, status, value)

    # --- after the search ------------------------------------------------------------------

    def _confirm(self) -> None:
        """The K best completed trials again on new seeds, once no trial is running."""
        trials = self.study.get_trials(deepcopy=False)
        if any(t.state == TrialState.RUNNING for t in trials):
            print("sweeplab: trials of another worker still run; the last worker to end runs "
                  "the confirmation", file=sys.stderr)  # fmt: skip
            return
        done = [t for t in trials if t.state == TrialState.COMPLETE]
        best = sorted(done, key=lambda t: t.value, reverse=self.settings.direction == "maximize")
        base = int(self.config.get("seed", 0))
        seeds = [base + i for i in range(1, self.settings.confirm_seeds + 1)]
        fixed = [o for o in self.fixed if not o.startswith("seed=")]
        jobs = [
            [*t.user_attrs[OVERRIDES_ATTR], *fixed, f"seed={seed}", f"search.confirms={t.number}"]
            for t in best[: self.settings.confirm]
            for seed in seeds
        ]
        if jobs:
            print(f"sweeplab: confirming the {min(len(best), self.settings.confirm)} best "
                  f"configuration(s) on seeds {seeds}", file=sys.stderr)  # fmt: skip
            self.launcher.launch(jobs, initial_job_idx=self.settings.n_trials)

    def _write_results(self) -> None:
        done = [t for t in self.study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
        if not done:
            return
        best = self.study.best_trial
        results = {"name": "sweeplab_optuna", "best_trial": best.number,
                   "best_params": best.params, "best_value": best.value,
                   "storage": self.storage, "study_name": self.settings.study_name}  # fmt: skip
        (self.sweep_dir / "optimization_results.yaml").write_text(
            OmegaConf.to_yaml(OmegaConf.create(json.loads(json.dumps(results))))
        )


def _folder_of(job: Any) -> str | None:
    try:
        return str(job.hydra_cfg.hydra.runtime.output_dir)
    except Exception:
        return None


def _summary_of(job: Any) -> Summary | None:
    folder = _folder_of(job)
    return Summary.load(Path(folder)) if folder else None
