"""What a sweep command would do, before it does anything: each job's folder and what the one
rule (`sweeplab.run_rule.decide`) says of it: run, resume, skip, rerun or stop.

A Hydra callback (conf/config.yaml), run once per command before any job:
- a `stale` value that is not stop, rerun or keep: one line, before any job;
- `dry_run=true`: list each job's action and stop (a search: its trials done and left);
- runs that other code or other data made (stale=stop, the default): one line that counts
  them and says how to go on, before any job trains;
- every job finished already: one line, and nothing starts.

It plans Hydra's basic sweeper (every combination of the sweep overrides, as Hydra expands
them) with sweeplab's job folder names, each job with its own config hash and data; the folders
of any other sweep (a search's trials) are checked against the command's own config.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra import compose
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from sweeplab.config import (
    STALE_CHOICES,
    RunConfig,
    check_config,
    check_objective,
    config_hash,
    job_dirname,
)
from sweeplab.errors import SweeplabError
from sweeplab.provenance import UNKNOWN, code_version
from sweeplab.run_format import SUMMARY, MadeBy, is_adaptive, is_search
from sweeplab.run_rule import Action, Command, Decision, FolderState, Stale, decide

DEFAULT_SUBDIR = "${sweeplab.job_dirname:${hydra.job.override_dirname}}"


@dataclass(frozen=True)
class PlannedJob:
    number: int
    folder: Path
    overrides: list[str]
    decision: Decision
    error: str | None = None  # what the job would stop with: its config does not check


def command_of(cfg: DictConfig, stale: str) -> Command:
    """A job's command as the rule sees it: its config hash and what makes its numbers (this
    code, the data its config reads); unknown (not checked) where the config does not check or
    its data is not there: the job itself then says what is wrong."""
    try:
        run = check_config(cfg)
    except Exception:
        return Command(None, None, stale)
    return checked_command(run, stale)


def checked_command(run: RunConfig, stale: str) -> Command:
    """`command_of` for a config already checked."""
    from sweeplab.data import data_fingerprint  # the files the config reads

    try:
        made_by = MadeBy(code_version(), data_fingerprint(run.dataset))
    except Exception:
        made_by = None
    return Command(config_hash(run), made_by, stale)


def plan_folder(folder: Path, command: Command) -> Decision:
    """The rule's decision for one run folder, read without touching it."""
    return decide(FolderState.read(folder), command, folder)


def planned_jobs(config: DictConfig) -> list[PlannedJob] | None:
    """The jobs of a basic-sweeper sweep named by sweeplab's folders, else None."""
    from hydra._internal.config_loader_impl import get_overrides_dirname
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    hydra = config.hydra
    if "BasicSweeper" not in str(hydra.sweeper.get("_target_", "")):
        return None
    if OmegaConf.to_container(hydra.sweep, resolve=False).get("subdir") != DEFAULT_SUBDIR:
        return None
    parser = OverridesParser.create()
    (jobs,) = BasicSweeper.split_arguments(parser.parse_overrides(list(hydra.overrides.task)), None)
    names = hydra.job.config.override_dirname
    planned = []
    for number, overrides in enumerate(jobs):
        dirname = get_overrides_dirname(
            parser.parse_overrides(overrides), list(names.exclude_keys), names.item_sep,
            names.kv_sep,
        )  # fmt: skip
        folder = Path(str(hydra.sweep.dir)) / job_dirname(dirname)
        try:  # what the job itself checks first: its groups, keys and values
            job = compose(config_name=hydra.job.config_name, overrides=overrides)
            run = check_config(job)
        except Exception as err:  # the job would stop here with this line
            error = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            decision = Decision(Action.STOP, "its config does not check")
            planned.append(PlannedJob(number, folder, overrides, decision, error))
            continue
        decision = plan_folder(folder, checked_command(run, str(config.stale)))
        planned.append(PlannedJob(number, folder, overrides, decision))
    return planned


def base_command(config: DictConfig) -> Command:
    """The command's own config (its overrides that do not sweep) as the rule sees it."""
    parser = OverridesParser.create()
    fixed = [
        o.input_line
        for o in parser.parse_overrides(list(config.hydra.overrides.task))
        if not o.is_sweep_override() and o.input_line is not None
    ]
    try:
        base = compose(config_name=config.hydra.job.config_name, overrides=fixed)
    except Exception:
        return Command(None, None, str(config.stale))
    return command_of(base, str(config.stale))


def folder_decisions(config: DictConfig, command: Command) -> list[Decision]:
    """The rule on every run folder of a sweep that is not planned job by job (a search's
    trials), against the command's own code and data (each trial has its own config)."""
    command = Command(None, command.made_by, command.stale)
    sweep_dir = Path(str(config.hydra.sweep.dir))
    return [plan_folder(path.parent, command) for path in sorted(sweep_dir.glob(f"*/{SUMMARY}"))]


def stale_line(sweep_dir: Path | str, decisions: list[Decision], now: MadeBy) -> str:
    """The one line that stops a sweep whose folder holds runs other code or data made."""
    stale = [d for d in decisions if d.action == Action.STOP and d.stale]
    code = [d for d in stale if d.stale == "code version"]
    chosen, index = (code, 0) if code else (stale, 1)
    counts = Counter((d.found[index] if d.found else None) or UNKNOWN for d in chosen)
    by = ", ".join(f"{n} by {version}" for version, n in counts.most_common())
    made = (
        f"by another code version ({by}; this code is {now.code_version})"
        if code
        else f"from other data ({by}; this command reads data {now.data_fingerprint})"
    )
    return (
        f"sweeplab: error: {len(chosen)} run(s) in {sweep_dir} were made {made}: pass "
        "stale=rerun to train them again (their old results are kept in each run's stale/ "
        "folder) or stale=keep to keep them as they are"
    )


def _search_line(config: DictConfig) -> str:
    """A search's plan: its trials done and to run, from the study in the sweep folder."""
    from hydra_plugins.sweeplab_optuna_sweeper.study import sweep_study

    sweeper = config.hydra.sweeper
    study = sweep_study(Path(config.hydra.sweep.dir), sweeper.get("storage"), sweeper.study_name)
    trials = study.get_trials(deepcopy=False) if study is not None else []
    states = [t.state.name.lower() for t in trials]
    counts = ", ".join(f"{states.count(s)} {s}" for s in dict.fromkeys(states)) or "none yet"
    left = max(int(sweeper.n_trials) - len(trials), 0)
    confirm = (
        f", then {sweeper.confirm} confirmed on {sweeper.confirm_seeds} seeds"
        if sweeper.get("confirm")
        else ""
    )
    return (
        f"sweeplab: search {sweeper.study_name!r} in {config.hydra.sweep.dir}: "
        f"{len(trials)} of {sweeper.n_trials} trials exist ({counts}); {left} to run{confirm}"
    )


def _print_next_round(config: DictConfig) -> None:
    """An adaptive-seeds sweep's plan: the rounds its results complete, and the next round."""
    from hydra_plugins.sweeplab_seeds_sweeper._impl import next_round

    arguments = [str(o) for o in config.hydra.overrides.task]
    done, jobs = next_round(config, [a for a in arguments if not a.startswith("dry_run=")])
    open_now = ""
    if done:
        still = done[-1].decisions
        still = still[~still["verdict"].str.startswith(("higher", "lower", "equivalent"))]
        open_now = f"; open: {', '.join(f'{r.factor}={r.level}' for r in still.itertuples())}"
    for number, job in enumerate(jobs):
        print(f"#{number} run    {' '.join(job)}")
    where = config.hydra.sweep.dir
    print(f"sweeplab: dry run of {where}: {len(done)} round(s) done{open_now}; "
          f"{len(jobs)} job(s) in the next round; nothing ran")  # fmt: skip


def _print_plan(jobs: list[PlannedJob], sweep_dir: Any) -> None:
    for job in jobs:
        print(f"#{job.number} {job.decision.action:<6} {job.folder.name}  ({job.decision.why})")
    counts = ", ".join(
        f"{sum(j.decision.action == a for j in jobs)} {a}"
        for a in Action if any(j.decision.action == a for j in jobs)
    )  # fmt: skip
    print(f"sweeplab: dry run of {len(jobs)} jobs in {sweep_dir}: {counts}; nothing ran")


class SweepPlan(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        stale = str(config.get("stale", Stale.stop))
        if stale not in list(Stale):  # before any job, rather than once per job
            print(f"sweeplab: error: invalid config: stale={stale!r}: {STALE_CHOICES}",
                  file=sys.stderr)  # fmt: skip
            sys.exit(2)
        dry = bool(config.get("dry_run", False))
        sweep_dir = config.hydra.sweep.dir
        try:  # what every trial would fail on, before the first: a search's objective
            check_objective(config.get("objective", "val_accuracy"))
        except SweeplabError as err:
            print(f"sweeplab: error: {err}", file=sys.stderr)
            sys.exit(2)
        if is_search(dict(config.hydra.sweeper)) and dry:
            print(_search_line(config))
            sys.exit(0)
        if is_adaptive(dict(config.hydra.sweeper)) and dry:
            _print_next_round(config)
            sys.exit(0)
        jobs = planned_jobs(config)
        if jobs is None and dry:
            print("sweeplab: dry_run plans sweeps of Hydra's basic sweeper with sweeplab's "
                  "job folders; this sweep uses another", file=sys.stderr)  # fmt: skip
            sys.exit(2)
        if dry:
            assert jobs is not None
            wrong = next((job for job in jobs if job.error), None)
            if wrong is not None:  # the line the jobs would each fail with, before any folder
                print(f"sweeplab: error: {wrong.error}", file=sys.stderr)
                sys.exit(2)
            _print_plan(jobs, sweep_dir)
            sys.exit(0)
        base = None  # the command's own config, composed only where needed
        if stale != Stale.stop:  # each run applies stale=rerun or stale=keep itself
            decisions = []
        elif jobs is not None:
            decisions = [job.decision for job in jobs]
        else:
            base = base_command(config)
            decisions = folder_decisions(config, base)
        if any(d.stale for d in decisions):
            base = base or base_command(config)
            now = base.made_by or MadeBy(code_version(), None)
            print(stale_line(sweep_dir, decisions, now), file=sys.stderr)
            sys.exit(2)
        if jobs and all(job.decision.action == Action.SKIP for job in jobs):
            report = Path(str(sweep_dir)) / "report" / "report.md"
            print(f"sweeplab: {len(jobs)} of {len(jobs)} runs in {sweep_dir} finished; nothing "
                  f"to run (report: {report})", file=sys.stderr)  # fmt: skip
            sys.exit(0)
