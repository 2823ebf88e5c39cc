"""The search behind `hydra/sweeper=sweeplab_optuna`: Optuna's ask-and-tell over Hydra's
launchers, with the study in the sweep folder.

Every command on the same sweep folder is a worker of one study. A worker asks for one trial
at a time (under a file lock in the sweep folder, so that `n_trials` counts every worker's
trials once), launches it as one job whose folder and number are the trial's, and tells the
study how it ended as soon as it ends: no worker waits for a batch. While it works on a trial
it holds that trial's claim lock; the OS drops the lock when the worker dies however it dies,
so a trial that is RUNNING in the study with a free claim was cut off (a crash, kill -9,
Ctrl-C): the next worker that finds it launches it again.

The job learns its trial from its environment (`trial.current_trial`), never from the app's
config keys; its return value is the objective (a tuple for several), and raising
`optuna.TrialPruned` ends it as pruned.
"""

from __future__ import annotations

import fcntl
import logging
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

import optuna
from hydra.core.plugins import Plugins
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_method
from hydra_plugins.sweeplab_optuna_sweeper import _results, _settings
from hydra_plugins.sweeplab_optuna_sweeper._jobs import (
    STATUS_NAMES,
    env_override,
    folder_of,
    outcome,
    quoted,
)
from hydra_plugins.sweeplab_optuna_sweeper._space import (
    SearchError,
    describe,
    grid,
    grid_size,
    parse,
    suggest,
)
from hydra_plugins.sweeplab_optuna_sweeper.study import (
    ERROR,
    FOLDER,
    JOURNAL_SUFFIX,
    OVERRIDES,
    SEARCH,
    STATUS,
    make_pruner,
    open_storage,
    pruner_attrs,
)
from hydra_plugins.sweeplab_optuna_sweeper.trial import (
    ENV_CONFIRMS,
    ENV_STORAGE,
    ENV_STUDY,
    ENV_TRIAL,
)
from omegaconf import DictConfig, OmegaConf, read_write
from optuna.trial import FrozenTrial, TrialState

log = logging.getLogger(__name__)
BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher"
STATE = Path(".sweeplab") / "search"  # in the sweep folder: the ask lock, trials' claim locks
optuna.logging.set_verbosity(optuna.logging.WARNING)


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
        self.sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()  # jobs may chdir
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )
        self.asking = threading.Lock()
        self.seeded = False  # whether this worker has seeded its sampler (at its first ask)
        self.told: list[FrozenTrial] = []  # this command's finished trials, in order
        self.stop_reason: str | None = None  # set once too many trials failed

    # --- checked before any trial ------------------------------------------------------------

    def _plan(self, arguments: list[str]) -> None:
        s = self.settings
        if s.n_trials < 1:
            raise SearchError(f"hydra.sweeper.n_trials={s.n_trials}: must be at least 1")
        if not 0.0 <= float(s.max_failure_rate) <= 1.0:
            raise SearchError(f"hydra.sweeper.max_failure_rate={s.max_failure_rate}: give a "
                              "share between 0.0 and 1.0")  # fmt: skip
        self.directions = _settings.directions(s.direction)
        self.metric_names = _settings.metric_names(s.metric_names, len(self.directions))
        self.value_formats = _settings.value_formats(s.value_format, _results.names(self))
        params = [f"{key}={value}" for key, value in (s.params or {}).items()]
        self.space, self.fixed = parse(params + list(arguments))
        for key in self.space:
            self._check_key(key)
        self.extend: Callable[[DictConfig, Any], None] | None = None
        if s.custom_search_space:
            self.extend = get_method(s.custom_search_space)
        pruner = _settings.pruner_name(s.pruner, len(self.directions))
        args = OmegaConf.to_container(s.pruner_args) if s.pruner_args else {}
        assert isinstance(args, dict)
        try:
            self.pruner = make_pruner(pruner, args)
        except (TypeError, ValueError) as err:
            raise SearchError(f"hydra.sweeper.pruner_args={args} for {pruner}: {err}") from err
        self.pruner_attrs = pruner_attrs(pruner, args)
        target, _ = _settings.sampler_node(s.sampler)
        self.n_trials = int(s.n_trials)
        if _settings.is_grid(target):
            if self.extend is not None:
                raise SearchError("the grid sampler cannot take a custom_search_space: set it "
                                  "to null")  # fmt: skip
            size = grid_size(grid(self.space))
            if size < self.n_trials:
                print(f"[sweeplab_optuna] the grid holds {size} configurations: running "
                      f"{size} trials, not n_trials={self.n_trials}", file=sys.stderr)  # fmt: skip
                self.n_trials = size
        if s.confirm > 0 and OmegaConf.select(self.config, s.confirm_key) is None:
            raise SearchError(f"hydra.sweeper.confirm={s.confirm} reruns the best trials on new "
                              f"values of {s.confirm_key!r}, which the config lacks: set "
                              "hydra.sweeper.confirm_key to the app's seed key")  # fmt: skip
        self.sampler = _settings.make_sampler(s.sampler, self.space)
        self.study = self._open_study()

    def _check_key(self, key: str) -> None:
        if key.startswith("+"):  # a key the app's config lacks, on purpose
            return
        if key in self.config.hydra.runtime.choices:  # a config group, e.g. model: choice(...)
            return
        if OmegaConf.select(self.config, key, default=KeyError) is KeyError:
            raise SearchError(f"searched key {key!r} is not in the config: check its spelling, "
                              f"or write +{key} to add it (--cfg job lists the keys)")  # fmt: skip

    def _identity(self) -> dict[str, str]:
        """What makes this search this search, as the study's flat user attributes."""
        space = {f"{SEARCH}space.{key}": describe(dist) for key, dist in self.space.items()}
        return {
            **space,
            f"{SEARCH}custom_search_space": str(self.settings.custom_search_space or ""),
            f"{SEARCH}sampler": _settings.describe_sampler(self.settings.sampler),
            f"{SEARCH}direction": ", ".join(self.directions),
            f"{SEARCH}fixed": " ".join(sorted(self.fixed)),
        }

    def _open_study(self) -> optuna.Study:
        given = self.settings.storage
        where = str(given) if given else str(self.sweep_dir / f"study{JOURNAL_SUFFIX}")
        if where.endswith(JOURNAL_SUFFIX):
            where = str(Path(where).absolute())  # a job that chdirs opens the same file
        try:
            study = optuna.create_study(
                study_name=self.settings.study_name, storage=open_storage(where),
                sampler=self.sampler, pruner=self.pruner, directions=self.directions,
                load_if_exists=True,
            )  # fmt: skip
        except Exception as err:
            reason = f"{type(err).__name__}: {err}".splitlines()[0]
            raise SearchError(f"the study's storage {where} cannot be opened ({reason}): pass "
                              "a writable hydra.sweeper.storage") from err  # fmt: skip
        self.storage = where
        stored_directions = [d.name.lower() for d in study.directions]
        if stored_directions != self.directions:
            both = (", ".join(stored_directions), ", ".join(self.directions))
            raise SearchError(self._other_search(where, {"direction": both}))
        identity = self._identity()
        stored = {k: v for k, v in study.user_attrs.items() if k.startswith(SEARCH)}
        if not stored:
            for key, value in identity.items():
                study.set_user_attr(key, value)
        elif stored != identity:
            keys = sorted(set(stored) | set(identity))
            changed = {key[len(SEARCH) :]: (stored.get(key, "-"), identity.get(key, "-"))
                       for key in keys if stored.get(key) != identity.get(key)}  # fmt: skip
            raise SearchError(self._other_search(where, changed))
        for key, value in self.pruner_attrs.items():
            study.set_user_attr(key, value)
        if self.metric_names:
            with warnings.catch_warnings():  # "experimental" since Optuna 3.2, and still there
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(self.metric_names)
        return study

    def _other_search(self, where: str, changed: dict[str, tuple[str, str]]) -> str:
        what = "; ".join(
            f"{key}: {old!r} there, {new!r} here" for key, (old, new) in changed.items()
        )
        return (
            f"study {self.settings.study_name!r} in {where} was made by another search "
            f"({what}): run the same search to continue it, or pass a new hydra.sweep.dir"
        )

    # --- the trials ----------------------------------------------------------------------------

    def run(self, arguments: list[str]) -> list[Any]:
        try:
            self._plan(arguments)
        except SearchError as err:
            print(f"sweeplab_optuna: error: {err}", file=sys.stderr)
            sys.exit(2)
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, self.sweep_dir / "multirun.yaml")  # as Hydra's own sweeper
        self._pass_trials_by_env()
        # Hydra's basic launcher says "Launching 1 jobs locally" and the job's overrides for
        # every trial; the search's own line per trial says which trial and its values.
        logging.getLogger(BASIC_LAUNCHER).setLevel(logging.WARNING)
        workers = int(self.settings.n_jobs)
        if workers > 1 and type(self.launcher).__name__ == "BasicLauncher":
            print(
                "[sweeplab_optuna] hydra.sweeper.n_jobs > 1 needs a parallel launcher "
                "(hydra/launcher=joblib); running one trial at a time",
                file=sys.stderr,
            )
            workers = 1
        threads = [threading.Thread(target=self._work) for _ in range(workers - 1)]
        for thread in threads:
            thread.start()
        self._work()
        for thread in threads:
            thread.join()
        if not self.told and self.stop_reason is None:
            done = len(self.study.get_trials(deepcopy=False))
            log.info("%d of %d trials done (n_trials=%d): nothing to run", done, self.n_trials,
                     self.n_trials)  # fmt: skip
        if self.stop_reason is None and self.settings.confirm > 0:
            self._confirm()
        _results.write(self)
        if self.stop_reason is not None:
            print(f"sweeplab_optuna: error: {self.stop_reason}", file=sys.stderr)
            sys.exit(1)
        return []

    def _pass_trials_by_env(self) -> None:
        """Every job's environment names the study; its own trial number is then one more
        override. Hydra composes each job from the sweep's hydra overrides plus the job's."""
        with read_write(self.config.hydra):
            self.config.hydra.overrides.hydra.extend([
                f"++hydra.job.env_set.{ENV_STORAGE}={quoted(self.storage)}",
                f"++hydra.job.env_set.{ENV_STUDY}={quoted(str(self.settings.study_name))}",
                f"++hydra.job.env_set.{ENV_TRIAL}=''",
                f"++hydra.job.env_set.{ENV_CONFIRMS}=''",
            ])  # fmt: skip

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

    def _next_trial(self) -> tuple[Any, IO[str]] | None:
        """A cut-off trial to finish, else a new one while fewer than n_trials exist."""
        with self.asking, _flock(self.sweep_dir / STATE / "ask.lock"):
            if self.stop_reason is not None:
                return None
            trials = self.study.get_trials(deepcopy=False)
            for trial in trials:
                if trial.state == TrialState.RUNNING and OVERRIDES in trial.user_attrs:
                    claim = self._claim(trial.number)
                    if claim is not None:
                        log.info("trial %d was cut off; launching it again", trial.number)
                        return trial, claim
            if len(trials) >= self.n_trials:
                return None
            if not self.seeded:
                # Workers of one study must not draw the same numbers: each seeds its sampler
                # with the seed plus the number of its first trial (0 for a lone command, so
                # one command's search repeats exactly).
                self.study.sampler = _settings.make_sampler(
                    self.settings.sampler, self.space, offset=len(trials)
                )
                self.seeded = True
            trial = self.study.ask()
            claim = self._claim(trial.number)
            assert claim is not None  # a new number: nobody else has it
            for key, dist in self.space.items():
                suggest(trial, key, dist)
            if self.extend is not None:
                self.extend(self.config, trial)
            params = [f"{key}={value}" for key, value in trial.params.items()]
            trial.set_user_attr(OVERRIDES, params)
            return trial, claim

    def _work(self) -> None:
        while (next_trial := self._next_trial()) is not None:
            trial, claim = next_trial
            try:
                self._launch(trial)
            finally:
                claim.close()  # releases the claim

    def _launch(self, trial: Any) -> None:
        overrides = [*trial.user_attrs[OVERRIDES], *self.fixed,
                     env_override(ENV_TRIAL, trial.number)]  # fmt: skip
        _results.starting(self, trial)
        (job,) = self.launcher.launch([overrides], trial.number)
        state, values, error = outcome(job, len(self.directions))
        storage, trial_id = self.study._storage, trial._trial_id
        storage.set_trial_user_attr(trial_id, FOLDER, folder_of(job))
        storage.set_trial_user_attr(trial_id, STATUS, STATUS_NAMES[state])
        if error:
            storage.set_trial_user_attr(trial_id, ERROR, error)
        with self.asking, suppress(RuntimeError):  # grid's study.stop(): told anyway
            self.study.tell(trial.number, values if state == TrialState.COMPLETE else None,
                            state=state)  # fmt: skip
        with self.asking:
            self.told.append(self.study.get_trials(deepcopy=False)[trial.number])
            _results.progress(self, self.told[-1])
            self._count_failures(trial.number, error)

    def _count_failures(self, number: int, error: str | None) -> None:
        failed = sum(t.state == TrialState.FAIL for t in self.told)
        rate = float(self.settings.max_failure_rate)
        if failed and failed / len(self.told) > rate and self.stop_reason is None:
            self.stop_reason = (
                f"{failed} of {len(self.told)} trials failed, more than "
                f"hydra.sweeper.max_failure_rate={rate} allows; the last: trial {number}: "
                f"{error}"
                if error
                else f"{failed} of {len(self.told)} trials failed"
            )

    # --- after the search ------------------------------------------------------------------

    def _confirm(self) -> None:
        """The K best completed trials again on new values of confirm_key, once no trial is
        running (single objective)."""
        trials = self.study.get_trials(deepcopy=False)
        if any(t.state == TrialState.RUNNING for t in trials):
            print("[sweeplab_optuna] trials of another worker still run; the last worker to "
                  "end runs the confirmation", file=sys.stderr)  # fmt: skip
            return
        if len(self.directions) > 1:
            print("[sweeplab_optuna] confirm reruns the best trial of one objective; this "
                  "study has several: skipped", file=sys.stderr)  # fmt: skip
            return
        done = [t for t in trials if t.state == TrialState.COMPLETE]
        best = sorted(done, key=lambda t: t.value, reverse=self.directions[0] == "maximize")
        key = str(self.settings.confirm_key)
        base = int(OmegaConf.select(self.config, key))
        seeds = [base + i for i in range(1, self.settings.confirm_seeds + 1)]
        fixed = [o for o in self.fixed if not o.startswith(f"{key}=")]
        jobs = [
            [
                *t.user_attrs[OVERRIDES],
                *fixed,
                f"{key}={seed}",
                env_override(ENV_CONFIRMS, t.number),
            ]
            for t in best[: self.settings.confirm]
            for seed in seeds
        ]
        if jobs:
            print(f"[sweeplab_optuna] confirming the {min(len(best), self.settings.confirm)} "
                  f"best configuration(s) on {key} {seeds}", file=sys.stderr)  # fmt: skip
            self.launcher.launch(jobs, initial_job_idx=self.n_trials)
