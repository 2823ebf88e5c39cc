"""Run folders -> tidy pandas frames. Reads files only; never imports the training code.

A run folder is any folder with a `.hydra/config.yaml` of a training run, a `metrics.csv` or a
`summary.json` (DESIGN.md's run-folder contract). `load_runs` gives one row per run: its
flattened config (`model.name`, `regularization.weight_decay`, ...), its status, every
summary field, and what its files say against each other (`problems`). `load_epochs` gives
the long per-epoch frame of all `metrics.csv` files; `sweep_progress` where a sweep stands.
"""

from __future__ import annotations

import fcntl
import io
import json
import math
import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from sweeplab.provenance import UNKNOWN  # provenance of a run written before it was recorded
from sweeplab.run_format import (
    CHECKPOINTS,
    CONFIG,
    HYDRA,
    HYDRA_RECORD,
    LOCK,
    METRICS,
    REQUIRED_METRICS,
    STALE,
    SUMMARY,
    flatten,
    is_search,
    override_values,
    read_config,
    read_multirun,
    read_overrides,
    read_yaml,
    sweeper_of,
)

MARKERS = (SUMMARY, METRICS, str(CONFIG))
# Folders below a run that hold no run of their own (`stale`: results of other code, kept
# aside by stale=rerun).
NOT_RUNS = {HYDRA, "report", CHECKPOINTS, ".submitit", STALE}
# What a completed run's summary.json must hold for the statistics that read it.
COMPLETED_FIELDS = ("config_hash", "test_accuracy", "best_val_accuracy", "epochs_completed")


class CollectError(Exception):
    """Nothing usable under the given folders; the message says what was expected."""


def find_run_folders(root: Path) -> list[Path]:
    """Every run folder at or below `root`, sorted."""
    folders: set[Path] = set()
    for marker in MARKERS:
        for path in root.rglob(marker):
            folder = path.parents[1] if marker.startswith(".hydra") else path.parent
            if not NOT_RUNS.intersection(folder.relative_to(root).parts):
                folders.add(folder)
    return sorted(folders)


def _read_config(folder: Path) -> dict[str, Any]:
    return flatten(read_config(folder), lists_as_text=True)


def _hydra_record(folder: Path) -> dict[str, Any]:
    """Hydra's record of the job (`.hydra/hydra.yaml`), {} without one."""
    record = read_yaml(folder / HYDRA_RECORD)
    return (record.get("hydra") or {}) if isinstance(record, dict) else {}


def _runtime_keys(hydra: dict[str, Any]) -> list[str]:
    """The keys the run's own config declared as not changing results: Hydra leaves them out
    of job folder names (`override_dirname.exclude_keys`, set from sweeplab's schema)."""
    names = hydra.get("job", {}).get("config", {}).get("override_dirname", {})
    return [str(key) for key in names.get("exclude_keys") or []]


def _choices(hydra: dict[str, Any]) -> dict[str, str]:
    """The option of each config group the run composed (`model: lenet5_bn`), from Hydra's
    record of the job; Hydra's own groups (`hydra/launcher`, ...) left out."""
    choices = (hydra.get("runtime") or {}).get("choices") or {}
    return {str(k): str(v) for k, v in choices.items() if not str(k).startswith("hydra/") and v}


def _search_job(hydra: dict[str, Any]) -> dict[str, int | None]:
    """A search's job: the trial it is, or the trial a confirmation run repeats, from the
    environment sweeplab's Optuna sweeper gave it (`hydra.job.env_set`); {} for other jobs."""
    from hydra_plugins.sweeplab_optuna_sweeper.trial import ENV_CONFIRMS, ENV_STUDY, ENV_TRIAL

    env = (hydra.get("job") or {}).get("env_set") or {}
    if not env.get(ENV_STUDY):
        return {}
    number = {key: str(env.get(key) or "").strip() for key in (ENV_TRIAL, ENV_CONFIRMS)}
    return {
        "search.trial": int(number[ENV_TRIAL]) if number[ENV_TRIAL] else None,
        "search.confirms": int(number[ENV_CONFIRMS]) if number[ENV_CONFIRMS] else None,
    }


def _overrides(folder: Path) -> dict[str, str] | None:
    """The job's command-line overrides as {key: value as written}, or None without the file
    (a copied run folder, an export)."""
    overrides = read_overrides(folder)
    return override_values(overrides) if overrides is not None else None


PROVENANCE = "provenance."  # the prefix of the columns of summary.json's provenance
# What a report groups runs by when it checks what made them (never pooled silently).
MADE_BY = ("code_version", "data_fingerprint", "cpu", "host", "commit")


def provenance_columns(summary: dict[str, Any]) -> dict[str, Any]:
    """summary.json's provenance as `provenance.<field>` columns (`provenance.packages.torch`);
    `unknown` for a run written before it was recorded."""
    made = summary.get("provenance")
    columns = flatten(made, PROVENANCE, lists_as_text=True) if isinstance(made, dict) else {}
    for key in MADE_BY:
        if columns.get(PROVENANCE + key) is None:
            no_git = key == "commit" and columns.get(PROVENANCE + "git") == "no git"
            columns[PROVENANCE + key] = "no git" if no_git else UNKNOWN
    if summary.get("torch_version") and not columns.get(PROVENANCE + "packages.torch"):
        columns[PROVENANCE + "packages.torch"] = summary["torch_version"]
    return columns


def overrides_of(runs: pd.DataFrame, path: str) -> dict[str, str] | None:
    """The overrides of the run at `path` (a row's `path`), as `load_runs` read them."""
    return runs.attrs.get("overrides", {}).get(path)


def _running(folder: Path) -> bool:
    """Whether a live process holds the run folder's `.lock` (its OS lock)."""
    try:
        fd = os.open(folder / LOCK, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _read_summary(folder: Path) -> dict[str, Any]:
    path = folder / SUMMARY
    if not path.exists():
        if _running(folder):
            return {"status": "running", "error": None}
        return {"status": "incomplete", "error": "no summary.json: killed, or not started"}
    try:
        summary = json.loads(path.read_text())
        if not isinstance(summary, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as err:
        return {"status": "unreadable", "error": f"summary.json unreadable: {err}"}
    if "status" not in summary:
        return {"status": "unreadable", "error": "summary.json has no status"}
    return summary


def read_metrics(folder: Path) -> tuple[pd.DataFrame | None, list[str]]:
    """metrics.csv without a row cut short (a crash mid-write), and what was wrong with it."""
    path = folder / METRICS
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None, []
    except OSError as err:
        return None, [f"metrics.csv unreadable ({err})"]
    problems = []
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]  # the last row was cut mid-line: never trust it
        problems.append("metrics.csv ends in a row cut short (left out)")
    try:
        metrics = pd.read_csv(io.StringIO(text))
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        return None, [*problems, f"metrics.csv unreadable ({str(err).splitlines()[0]})"]
    missing = [c for c in REQUIRED_METRICS if c not in metrics.columns]
    if missing:
        return None, [*problems, f"metrics.csv lacks the columns {missing}"]
    broken = metrics[list(REQUIRED_METRICS)].isna().any(axis=1)
    if broken.any():
        problems.append(f"metrics.csv has {int(broken.sum())} incomplete row(s) (left out)")
    return metrics[~broken], problems


def _file_problems(summary: dict[str, Any], metrics: pd.DataFrame | None) -> list[str]:
    """Where summary.json and metrics.csv disagree, or a completed summary lacks a field."""
    problems = []
    if summary.get("status") == "completed":
        lacking = [key for key in COMPLETED_FIELDS if summary.get(key) is None]
        if lacking:
            problems.append(f"summary.json says completed but lacks {', '.join(lacking)}")
    done = summary.get("epochs_completed")
    if isinstance(done, int) and done > 0:
        val = metrics[metrics["split"] == "val"]["epoch"] if metrics is not None else []
        absent = sorted(set(range(1, done + 1)) - {int(e) for e in val})
        if absent:
            problems.append(
                f"metrics.csv lacks the val rows of epoch(s) {absent} that summary.json reports"
            )
    return problems


def load_runs(roots: Iterable[str | Path]) -> pd.DataFrame:
    """One row per training run under `roots`: `sweep`, `run`, config keys, summary fields."""
    rows = []
    config_keys: dict[str, None] = {}  # an ordered set
    runtime_keys: set[str] = set()
    overrides: dict[str, dict[str, str] | None] = {}
    for root in map(Path, roots):
        if not root.is_dir():
            raise CollectError(
                f"{root} is not a folder: pass a sweep folder such as multirun/<name>"
            )
        for folder in find_run_folders(root):
            config = _read_config(folder)
            if config.get("mode", "train") != "train":
                continue  # an eval or predict folder: no training run to report
            summary = _read_summary(folder)
            metrics, metrics_problems = read_metrics(folder)
            summary_problems = _file_problems(summary, metrics)
            for key in ("input_size", "resize"):  # null: left to the model; the summary has it
                if config.get(key) is None and summary.get(key) is not None:
                    config[key] = summary[key]
            hydra = _hydra_record(folder)
            runtime_keys.update(_runtime_keys(hydra))
            row = {
                "sweep": str(root),
                "run": str(folder.relative_to(root)) or ".",
                "path": str(folder),
            }
            row.update(config)
            # What happened wins over what was asked (`device`: cpu, not the config's auto).
            row.update({k: v for k, v in summary.items() if not isinstance(v, dict | list)})
            # A group's column is the option chosen (`model`: lenet5_bn; summaries written
            # before they named the preset hold the family there, which is `model.name`).
            row.update(_choices(hydra))
            row.update(_search_job(hydra))
            row.update(provenance_columns(summary))
            row.setdefault("model_family", config.get("model.name"))
            overrides[row["path"]] = _overrides(folder)
            if summary["status"] in ("running", "incomplete", "unreadable"):
                val = metrics[metrics["split"] == "val"] if metrics is not None else []
                row["epochs_completed"] = int(val["epoch"].max()) if len(val) else None
            row["problems"] = "; ".join(metrics_problems + summary_problems)
            row["metrics_ok"] = not metrics_problems and not summary_problems
            row["summary_ok"] = not summary_problems
            config_keys.update(dict.fromkeys(config))
            rows.append(row)
    if not rows:
        names = ", ".join(str(root) for root in roots)
        raise CollectError(
            f"no run folders under {names}: expected folders holding .hydra/config.yaml, "
            "metrics.csv or summary.json (e.g. multirun/<date>/<time>/<job>/)"
        )
    runs = pd.DataFrame(rows)
    runs.attrs["config_columns"] = list(config_keys)
    runs.attrs["runtime_keys"] = sorted(runtime_keys)
    runs.attrs["overrides"] = overrides
    return runs


def config_columns(runs: pd.DataFrame) -> list[str]:
    """The flattened config keys among the columns of `load_runs`, in config-file order."""
    return list(runs.attrs.get("config_columns", []))


def runtime_columns(runs: pd.DataFrame) -> list[str]:
    """Config keys that do not change results (never factors), as the runs' Hydra config says."""
    return list(runs.attrs.get("runtime_keys", []))


def load_epochs(runs: pd.DataFrame) -> pd.DataFrame:
    """The long per-epoch frame: `path` of the run, then the columns of its metrics.csv."""
    frames = []
    for path in runs["path"]:
        metrics, _ = read_metrics(Path(path))  # rows cut short are left out (runs.problems)
        if metrics is not None:
            frames.append(metrics.assign(path=path))
    if not frames:
        return pd.DataFrame(columns=["path", "epoch", "split", "loss", "accuracy"])
    return pd.concat(frames, ignore_index=True)


def _grid_size(multirun: dict[str, Any]) -> int | None:
    """Jobs a sweep will run, from its multirun.yaml: the sweep overrides' product (Hydra's own
    parser), or an Optuna search's n_trials; None when it cannot tell."""
    hydra = multirun.get("hydra", {})
    sweeper = sweeper_of(multirun)
    if is_search(sweeper):  # a search: its trials, then
        confirm = (sweeper.get("confirm") or 0) * (sweeper.get("confirm_seeds") or 0)
        return (sweeper.get("n_trials") or 0) + confirm or None  # its confirmation runs
    from hydra.core.override_parser.overrides_parser import OverridesParser

    by_key = {str(k): f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()}
    for text in (hydra.get("overrides", {}) or {}).get("task", []) or []:
        by_key[text.split("=", 1)[0].lstrip("+~")] = text  # the command line wins
    try:
        overrides = OverridesParser.create().parse_overrides(list(by_key.values()))
        return math.prod(
            len(list(o.sweep_string_iterator())) for o in overrides if o.is_sweep_override()
        )
    except Exception:  # a sweep syntax we cannot count (interval, glob): no grid to compare
        return None


def sweep_progress(root: Path, runs: pd.DataFrame) -> dict[str, Any] | None:
    """Where a sweep stands: runs per state, jobs not started, and a time-left estimate."""
    multirun = read_multirun(root)
    if not multirun:
        return None
    mine = runs[runs["sweep"] == str(root)]
    counts = mine["status"].value_counts().to_dict()
    expected = _grid_size(multirun)
    progress: dict[str, Any] = {
        "jobs": expected,
        "completed": counts.get("completed", 0),
        "pruned": counts.get("pruned", 0),
        "running": counts.get("running", 0),
        "failed": sum(counts.get(s, 0) for s in ("failed", "diverged", "unreadable")),
        "stopped": sum(counts.get(s, 0) for s in ("interrupted", "incomplete")),
        "not started": max(0, expected - len(mine)) if expected else None,
        "seconds left": None,
    }
    if progress["running"] and "finished_at" in mine:
        finished = mine.dropna(subset=["started_at", "finished_at"])
        seconds = [
            (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
            for start, end in zip(finished["started_at"], finished["finished_at"], strict=True)
        ]
        if seconds:
            left = progress["running"] + (progress["not started"] or 0)
            progress["seconds left"] = sum(seconds) / len(seconds) * left / progress["running"]
    return progress
