"""What a sweep command would do, before it does anything: each job's folder and whether it
would run, resume or be skipped (`dry_run=true` prints that and stops), and one line instead
of a line per job when every job has finished already.

A Hydra callback (conf/config.yaml), run once per command before any job. It plans Hydra's
basic sweeper (every combination of the sweep overrides, as Hydra expands them) with
sweeplab's job folder names; for sweeplab's search sweeper it counts the study's trials.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra import compose
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from sweeplab.config import check_config, config_hash, job_dirname
from sweeplab.provenance import code_version
from sweeplab.run_folder import CHECKPOINTS, FINISHED, SUMMARY

DEFAULT_SUBDIR = "${sweeplab.job_dirname:${hydra.job.override_dirname}}"


@dataclass(frozen=True)
class PlannedJob:
    number: int
    folder: Path
    overrides: list[str]
    action: str  # "skip", "resume", "run" or "stop"
    why: str


def job_state(
    folder: Path, expected_hash: str | None, code: str | None = None, stale: str = "stop"
) -> tuple[str, str]:
    """What the job would do in `folder`, read-only (run_folder.decide_start's rules; `code`:
    this code's version, for the runs another one made)."""
    try:
        summary = json.loads((folder / SUMMARY).read_text())
    except (OSError, ValueError):
        summary = None
    made = summary.get("config_hash") if isinstance(summary, dict) else None
    if expected_hash and made not in (None, expected_hash):
        return "stop", "its folder holds a run of another config"
    status = summary.get("status") if isinstance(summary, dict) else None
    made_by = ((summary or {}).get("provenance") or {}).get("code_version") if made else None
    if code and status in (*FINISHED, "interrupted") and made_by != code and stale != "keep":
        if stale == "stop":
            return "stop", f"made by code {made_by or 'unknown'}: stale=rerun or stale=keep"
        return "run", f"made by code {made_by or 'unknown'}: again (stale=rerun)"
    if status in FINISHED:
        return "skip", f"{status} already"
    if status not in ("failed", "diverged") and (folder / CHECKPOINTS / "last.pt").is_file():
        done = summary.get("epochs_completed") if isinstance(summary, dict) else None
        return "resume", f"after epoch {done}" if done else "from checkpoints/last.pt"
    return "run", f"{status} before: again" if status else "new"


def _hash(config: DictConfig, overrides: list[str]) -> str | None:
    """The config hash the job would have (None when its config does not check)."""
    try:
        cfg = compose(config_name=config.hydra.job.config_name, overrides=overrides)
        return config_hash(check_config(cfg))
    except Exception:  # the job itself will say what is wrong with its config
        return None


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
    code = code_version()
    planned = []
    for number, overrides in enumerate(jobs):
        dirname = get_overrides_dirname(
            parser.parse_overrides(overrides), list(names.exclude_keys), names.item_sep,
            names.kv_sep,
        )  # fmt: skip
        folder = Path(str(hydra.sweep.dir)) / job_dirname(dirname)
        action, why = job_state(folder, _hash(config, overrides), code, str(config.stale))
        planned.append(PlannedJob(number, folder, overrides, action, why))
    return planned


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


class SweepPlan(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        dry = bool(config.get("dry_run", False))
        if "sweeplab_optuna" in str(config.hydra.sweeper.get("_target_", "")):
            if dry:
                print(_search_line(config))
                sys.exit(0)
            return
        jobs = planned_jobs(config)
        if jobs is None:
            if dry:
                print("sweeplab: dry_run plans sweeps of Hydra's basic sweeper with sweeplab's "
                      "job folders; this sweep uses another", file=sys.stderr)  # fmt: skip
                sys.exit(2)
            return
        sweep_dir = config.hydra.sweep.dir
        if dry:
            for job in jobs:
                print(f"#{job.number} {job.action:<6} {job.folder.name}  ({job.why})")
            counts = ", ".join(
                f"{sum(j.action == a for j in jobs)} {a}"
                for a in ("run", "resume", "skip", "stop") if any(j.action == a for j in jobs)
            )  # fmt: skip
            print(f"sweeplab: dry run of {len(jobs)} jobs in {sweep_dir}: {counts}; nothing ran")
            sys.exit(0)
        if jobs and all(job.action == "skip" for job in jobs):
            report = Path(str(sweep_dir)) / "report" / "report.md"
            print(f"sweeplab: {len(jobs)} of {len(jobs)} runs in {sweep_dir} finished; nothing "
                  f"to run (report: {report})", file=sys.stderr)  # fmt: skip
            sys.exit(0)
