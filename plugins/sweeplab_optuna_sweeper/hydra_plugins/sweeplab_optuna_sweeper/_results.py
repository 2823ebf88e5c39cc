"""What a search says and leaves behind: a line per finished trial, and at the end the best
trial (or the Pareto front of several objectives) on the console, in
`optimization_results.yaml` (as Hydra's Optuna sweeper writes it) and in `pareto.csv`."""

from __future__ import annotations

import csv
import json
import logging
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra_plugins.sweeplab_optuna_sweeper.study import ERROR, FOLDER, OVERRIDES
from omegaconf import OmegaConf
from optuna.trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    from hydra_plugins.sweeplab_optuna_sweeper._impl import Search

log = logging.getLogger(__name__)
RESULTS = "optimization_results.yaml"
PARETO = "pareto.csv"


def names(search: Search) -> list[str]:
    """The objectives' names: `metric_names`, else `value` (`value_0`, ... for several)."""
    if search.metric_names:
        return search.metric_names
    if len(search.directions) == 1:
        return ["value"]
    return [f"value_{i}" for i in range(len(search.directions))]


def _values(search: Search, values: list[float]) -> str:
    parts = zip(names(search), values, search.value_formats, strict=True)
    return ", ".join(f"{name} {format(value, spec)}" for name, value, spec in parts)


def _count(search: Search, trial: Any) -> str:
    """`[4/20] trial 3`: the place among the search's trials, then Optuna's number (which
    also names its folder and the study's records)."""
    return f"[{trial.number + 1}/{search.n_trials}] trial {trial.number}"


def starting(search: Search, trial: Any) -> None:
    """One line as a trial starts: which, of how many, and its values."""
    params = " ".join(f"{key}={value}" for key, value in trial.params.items())
    log.info("%s: %s", _count(search, trial), params)


def progress(search: Search, trial: FrozenTrial) -> None:
    """One line for a trial that ended: how, its values, and the best so far."""
    done = _count(search, trial)
    if trial.state == TrialState.COMPLETE:
        line = f"{done} completed: {_values(search, trial.values)}"
        if len(search.directions) == 1:
            best = search.study.best_trial
            shown = format(best.value, search.value_formats[0])
            line += f" (best so far {shown}, trial {best.number})"
    elif trial.state == TrialState.PRUNED:
        steps = trial.intermediate_values
        line = f"{done} pruned"
        if steps:
            last = max(steps)
            step = search.settings.step_name
            line += f" at {step} {last}: {_values(search, [steps[last]])}"
    else:
        line = f"{done} failed: {trial.user_attrs.get(ERROR, '?')}"
    log.info(line)


def again(search: Search, trial: FrozenTrial) -> str:
    """A command that runs the trial's configuration once more, outside the search."""
    overrides = [*trial.user_attrs.get(OVERRIDES, []), *search.fixed]
    return shlex.join([Path(sys.executable).name, sys.argv[0], *overrides])


def _serialisable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def write(search: Search) -> None:
    """The end of a search: the best trial or the Pareto front, on the console and in files."""
    study = search.study
    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if not done:
        failed = sum(t.state == TrialState.FAIL for t in study.get_trials(deepcopy=False))
        if failed and search.stop_reason is None:
            search.stop_reason = f"no trial completed ({failed} failed)"
        return
    results: dict[str, Any] = {"name": "sweeplab_optuna"}
    if len(search.directions) == 1:
        best = study.best_trial
        results |= {"best_params": best.params, "best_value": best.value}
        results |= {"best_trial": best.number, "best_folder": best.user_attrs.get(FOLDER)}
        log.info("best: trial %d, %s, %s", best.number, _values(search, best.values), best.params)
        log.info("its folder: %s", best.user_attrs.get(FOLDER, "?"))
        log.info("run it again: %s", again(search, best))
    else:
        front = sorted(study.best_trials, key=lambda t: t.number)
        results["solutions"] = [
            {"params": t.params, "values": t.values, "trial": t.number} for t in front
        ]
        _write_pareto(search, front)
        log.info("Pareto front: %d of %d completed trials (%s)", len(front), len(done),
                 search.sweep_dir / PARETO)  # fmt: skip
        for t in front:
            log.info("    trial %d: %s, %s", t.number, _values(search, t.values), t.params)
    results |= {"study_name": study.study_name, "storage": search.storage}
    (search.sweep_dir / RESULTS).write_text(OmegaConf.to_yaml(_serialisable(results)))
    log.info("continue this search: the same command with hydra.sweep.dir=%s (a larger "
             "hydra.sweeper.n_trials runs more; its study %r is in %s)", search.sweep_dir,
             study.study_name, search.storage or search.sweep_dir / "study.journal")  # fmt: skip


def _write_pareto(search: Search, front: list[FrozenTrial]) -> None:
    columns = names(search)
    keys = sorted({key for t in front for key in t.params})
    with (search.sweep_dir / PARETO).open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["trial", *columns, *keys, "folder"])
        for t in front:
            params = [t.params.get(key, "") for key in keys]
            writer.writerow([t.number, *t.values, *params, t.user_attrs.get(FOLDER, "")])
