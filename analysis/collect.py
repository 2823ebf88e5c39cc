"""Run folders -> tidy pandas frames. Reads files only; never imports the training code.

A run folder is any folder with a `.hydra/config.yaml` of a training run, a `metrics.csv` or a
`summary.json` (DESIGN.md's run-folder contract). `load_runs` gives one row per run: its
flattened config (`model.name`, `regularization.weight_decay`, ...), its status and every
summary field. `load_epochs` gives the long per-epoch frame of all `metrics.csv` files.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

log = logging.getLogger(__name__)

MARKERS = ("summary.json", "metrics.csv", ".hydra/config.yaml")
NOT_RUNS = {".hydra", "report", "checkpoints", ".submitit"}


class CollectError(Exception):
    """Nothing usable under the given folders; the message says what was expected."""


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists become strings so they can be grouped on."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, list):
            flat[name] = str(value)
        else:
            flat[name] = value
    return flat


def find_run_folders(root: Path) -> list[Path]:
    """Every run folder at or below `root`, sorted."""
    folders: set[Path] = set()
    for marker in MARKERS:
        for path in root.rglob(marker):
            folder = path.parents[1] if marker.startswith(".hydra") else path.parent
            if not NOT_RUNS.intersection(folder.relative_to(root).parts):
                folders.add(folder)
    return sorted(folders)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_config(folder: Path) -> dict[str, Any]:
    return flatten(_read_yaml(folder / ".hydra" / "config.yaml"))


def _runtime_keys(folder: Path) -> list[str]:
    """The keys the run's own config declared as not changing results: Hydra leaves them out
    of job folder names (`override_dirname.exclude_keys`, set from sweeplab's schema)."""
    hydra = _read_yaml(folder / ".hydra" / "hydra.yaml").get("hydra", {})
    names = hydra.get("job", {}).get("config", {}).get("override_dirname", {})
    return [str(key) for key in names.get("exclude_keys") or []]


def _read_summary(folder: Path) -> dict[str, Any]:
    path = folder / "summary.json"
    if not path.exists():
        return {"status": "incomplete", "error": "no summary.json: still running, or killed"}
    try:
        summary = json.loads(path.read_text())
        if not isinstance(summary, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as err:
        return {"status": "unreadable", "error": f"summary.json unreadable: {err}"}
    return summary


def _epochs_done(folder: Path) -> int | None:
    try:
        metrics = pd.read_csv(folder / "metrics.csv")
        return int(metrics.loc[metrics["split"] == "val", "epoch"].max())
    except (OSError, ValueError, KeyError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None


def load_runs(roots: Iterable[str | Path]) -> pd.DataFrame:
    """One row per training run under `roots`: `sweep`, `run`, config keys, summary fields."""
    rows = []
    config_keys: dict[str, None] = {}  # an ordered set
    runtime_keys: set[str] = set()
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
            for key in ("input_size", "resize"):  # null: left to the model; the summary has it
                if config.get(key) is None and summary.get(key) is not None:
                    config[key] = summary[key]
            runtime_keys.update(_runtime_keys(folder))
            row = {
                "sweep": str(root),
                "run": str(folder.relative_to(root)) or ".",
                "path": str(folder),
            }
            row.update({k: v for k, v in summary.items() if not isinstance(v, dict | list)})
            if summary["status"] in ("incomplete", "unreadable"):
                row["epochs_completed"] = _epochs_done(folder)
            row.update(config)
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
        try:
            metrics = pd.read_csv(Path(path) / "metrics.csv")
        except FileNotFoundError:
            continue
        except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            log.warning("skipping unreadable %s/metrics.csv: %s", path, err)
            continue
        frames.append(metrics.assign(path=path))
    if not frames:
        return pd.DataFrame(columns=["path", "epoch", "split", "loss", "accuracy"])
    return pd.concat(frames, ignore_index=True)
