"""The run folder's format, in one place: what a run writes and what Hydra leaves beside it,
and how each file is read. Torch-free: the report, the trackers, the launchers and the sweep
callbacks read folders without importing the training code.

    <run>/.hydra/config.yaml, overrides.yaml, hydra.yaml   Hydra's record of the job
    <run>/metrics.csv      one row per (epoch, split): METRICS_COLUMNS, flushed row by row
    <run>/summary.json     `Summary`: how the run ended (`Status`), its numbers, provenance
    <run>/checkpoints/     last.pt and best.pt (torch; sweeplab.run_folder.Checkpoint), and
                           last.json: what made last.pt, readable without torch
    <run>/stale/           results of other code or data, kept aside by stale=rerun
    <sweep>/multirun.yaml  Hydra's record of the sweep (its sweeper and overrides)

Every write here survives a crash: metrics rows are flushed as they are written, and JSON goes
to a temporary file of this process that is then renamed into place.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from sweeplab.provenance import DIFF

# What a training run writes into its folder (Hydra's .hydra/ and run.log aside).
METRICS = "metrics.csv"
SUMMARY = "summary.json"
CHECKPOINTS = "checkpoints"  # last.pt, best.pt and last.json
LAST = Path(CHECKPOINTS) / "last.pt"
LAST_MADE = Path(CHECKPOINTS) / "last.json"  # what made last.pt, for readers without torch
BEST = Path(CHECKPOINTS) / "best.pt"
LEARNING_CURVES = "learning_curves.png"
TEST_SAMPLES = "test_samples.png"
CONFUSION_MATRIX = "confusion_matrix.png"
TRACKERS = "trackers.json"  # where this run lives in each tracker (e.g. its MLflow run id)
TRAINING_OUTPUTS = (METRICS, SUMMARY, CHECKPOINTS, LEARNING_CURVES, TEST_SAMPLES, CONFUSION_MATRIX,
                    TRACKERS, DIFF)  # fmt: skip
TENSORBOARD_EVENTS = "events.out.tfevents.*"  # TensorBoard's event files, in the folder itself
LOCK = ".lock"  # flock-ed by the one process working in the folder; names it while it does
STALE = "stale"  # results of other code or data, kept aside by stale=rerun
# Hydra's record of a job, and of a sweep.
HYDRA = ".hydra"
CONFIG = Path(HYDRA) / "config.yaml"
OVERRIDES = Path(HYDRA) / "overrides.yaml"
HYDRA_RECORD = Path(HYDRA) / "hydra.yaml"
MULTIRUN = "multirun.yaml"
FAILED_NOTES = Path(".sweeplab") / "failed"  # in a sweep folder: a note per failed job

METRICS_COLUMNS = ("epoch", "split", "loss", "accuracy", "lr", "seconds", "images_per_second")
REQUIRED_METRICS = METRICS_COLUMNS[:4]  # what a reader needs of every row (older files: these)


class Status(StrEnum):
    """How a run ended, as summary.json's `status` says."""

    COMPLETED = "completed"
    PRUNED = "pruned"  # a search stopped it early: over, like completed
    DIVERGED = "diverged"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # a signal: resumable from last.pt


FINISHED = (Status.COMPLETED, Status.PRUNED)  # over: a rerun skips it
STARTS_AFRESH = (Status.FAILED, Status.DIVERGED)  # a rerun starts again, never resumes


class MadeBy(NamedTuple):
    """What makes a run's numbers besides its config: the code version and the data."""

    code_version: str | None
    data_fingerprint: str | None

    @classmethod
    def of(cls, provenance: dict[str, Any] | None) -> MadeBy:
        """From summary.json's `provenance` (unknown parts None)."""
        made = provenance or {}
        return cls(made.get("code_version"), made.get("data_fingerprint"))

    @classmethod
    def of_list(cls, values: list[str | None] | None) -> MadeBy:
        """From a checkpoint's `made_by` ([code version, data fingerprint]; [] before it)."""
        return cls(*[*(values or []), None, None][:2])


def now() -> str:
    """The time as summaries record it (UTC, ISO 8601, seconds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def replace_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file of this process, then rename it over `path`."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically; NaN and inf become null so every JSON reader can parse it."""
    clean = {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in data.items()
    }
    replace_atomically(path, lambda tmp: tmp.write_text(json.dumps(clean, indent=2) + "\n"))


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from `path`; None when missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_yaml(path: Path) -> Any:
    """The YAML document at `path`; None when missing or unreadable."""
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None


# --- metrics.csv -----------------------------------------------------------------------------


def _csv_row(row: dict[str, Any]) -> dict[str, Any]:
    # Floats with enough digits to compare runs exactly, few enough to read.
    return {
        key: f"{value:.8g}" if isinstance(value := row.get(key), float) else value
        for key in METRICS_COLUMNS
    }


class MetricsWriter:
    """Appends rows to metrics.csv and flushes each one, so a crash loses nothing written.

    `rows` first replaces the file (atomically) with exactly those rows: a resumed run passes
    the rows its checkpoint holds, so metrics.csv never gets duplicate or orphaned epochs.
    """

    def __init__(self, path: Path, rows: list[dict[str, Any]]) -> None:
        def write(tmp: Path) -> None:
            with tmp.open("w", newline="") as file:
                writer = csv.DictWriter(file, fieldnames=METRICS_COLUMNS)
                writer.writeheader()
                writer.writerows(_csv_row(row) for row in rows)

        replace_atomically(path, write)
        self._file = path.open("a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=METRICS_COLUMNS)

    def write(self, row: dict[str, Any]) -> None:
        """Write one (epoch, split) row and flush it to disk."""
        self._writer.writerow(_csv_row(row))
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


# --- summary.json ----------------------------------------------------------------------------


@dataclass
class Summary:
    """summary.json: how a run ended and its headline numbers (None: not reached)."""

    status: str = Status.FAILED
    error: str | None = None
    config_hash: str | None = None
    model: str | None = None  # as the user chose it: the preset (model=lenet5_bn), else family
    model_family: str | None = None  # the registry's name (model.name: lenet5)
    dataset: str | None = None
    input_size: int | None = None
    seed: int | None = None
    epochs: int | None = None
    started_at: str | None = None
    params: int | None = None
    device: str | None = None  # the device used (cpu, cuda), not the config's `auto`
    torch_version: str | None = None
    train_size: int | None = None
    val_size: int | None = None
    test_size: int | None = None
    data_source: str | None = None
    # Where the run's wall time went: start-up (process start, or the job's start in a process
    # that ran jobs before it, to the first training batch, less data), data (reading,
    # splitting, normalising, moving to the device), training, evaluation (val and test),
    # figures.
    startup_seconds: float | None = None
    data_seconds: float | None = None
    best_val_accuracy: float | None = None
    best_epoch: int | None = None
    epochs_completed: int | None = None
    train_seconds: float | None = None
    eval_seconds: float | None = None
    images_per_second: float | None = None
    compile_seconds: float | None = None  # the first batch with compile=true
    peak_rss_mb: float | None = None
    test_loss: float | None = None
    test_accuracy: float | None = None
    figures_seconds: float | None = None
    finished_at: str | None = None
    provenance: dict[str, Any] | None = None  # what made it (sweeplab.provenance.record)

    @classmethod
    def starting(cls, run: Any, config_hash: str, chosen_model: str | None) -> Summary:
        """The summary of a run starting now (`run`: its checked config)."""
        return cls(
            config_hash=config_hash,
            model=chosen_model or run.model.name,
            model_family=run.model.name,
            dataset=run.dataset.name,
            input_size=run.input_size,
            seed=run.seed,
            epochs=run.epochs,
            started_at=now(),
        )

    def model_label(self) -> str:
        """`lenet5_bn (lenet5 family)`: the preset, and its family where the name differs."""
        if self.model_family and self.model != self.model_family:
            return f"{self.model} ({self.model_family} family)"
        return str(self.model)

    def made_by(self) -> MadeBy:
        return MadeBy.of(self.provenance)

    def end(self, status: Status, error: BaseException | str | None = None) -> None:
        """Record how the run ended."""
        if isinstance(error, BaseException):
            error = f"{type(error).__name__}: {error}"
        self.status, self.error, self.finished_at = status, error, now()

    def write(self, run_dir: Path) -> None:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        write_json(run_dir / SUMMARY, {**values, "status": str(self.status)})

    @classmethod
    def load(cls, run_dir: Path) -> Summary | None:
        """The folder's summary; None when it is missing or unreadable."""
        data = read_json(run_dir / SUMMARY)
        if data is None:
            return None
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


# --- what made the last checkpoint, without torch -------------------------------------------


@dataclass(frozen=True)
class LastCheckpoint:
    """checkpoints/last.json beside last.pt: its config hash, epoch and what made it. A last.pt
    without one (written before it existed) is known only to exist."""

    config_hash: str | None = None
    epoch: int | None = None
    made_by: MadeBy | None = None

    def write(self, run_dir: Path) -> None:
        made = list(self.made_by) if self.made_by is not None else None
        data = {"config_hash": self.config_hash, "epoch": self.epoch, "made_by": made}
        write_json(run_dir / LAST_MADE, data)

    @classmethod
    def load(cls, run_dir: Path) -> LastCheckpoint | None:
        """What the folder says of its last.pt; None when there is no last.pt."""
        if not (run_dir / LAST).is_file():
            return None
        data = read_json(run_dir / LAST_MADE) or {}
        made = data.get("made_by")
        return cls(
            data.get("config_hash"),
            data.get("epoch"),
            MadeBy.of_list(made) if isinstance(made, list) else None,
        )


# --- Hydra's files ---------------------------------------------------------------------------


def read_config(run_dir: Path) -> dict[str, Any]:
    """The job's composed config (`.hydra/config.yaml`), {} without one."""
    config = read_yaml(run_dir / CONFIG)
    return config if isinstance(config, dict) else {}


def read_overrides(run_dir: Path) -> list[str] | None:
    """The job's command-line overrides as written (`.hydra/overrides.yaml`), or None without
    the file (a copied run folder, an export)."""
    lines = read_yaml(run_dir / OVERRIDES)
    return [str(line) for line in lines] if isinstance(lines, list) else None


def override_values(overrides: list[str]) -> dict[str, str]:
    """['+a.b=1', 'c=x'] -> {'a.b': '1', 'c': 'x'}: each key (without +/~) and its text."""
    pairs = (line.partition("=") for line in overrides)
    return {key.lstrip("+~"): value for key, sep, value in pairs if sep}


def read_multirun(sweep_dir: Path) -> dict[str, Any] | None:
    """Hydra's record of the sweep (`multirun.yaml`), None when the folder is no sweep."""
    multirun = read_yaml(sweep_dir / MULTIRUN)
    return multirun if isinstance(multirun, dict) else None


def sweep_folder(run_dir: Path) -> Path | None:
    """The sweep a run folder belongs to: Hydra leaves multirun.yaml in every sweep folder."""
    return run_dir.parent if (run_dir.parent / MULTIRUN).is_file() else None


def sweeper_of(multirun: dict[str, Any] | None) -> dict[str, Any]:
    """The sweeper's settings in a sweep's multirun.yaml ({} when unknown)."""
    sweeper = ((multirun or {}).get("hydra") or {}).get("sweeper") or {}
    return sweeper if isinstance(sweeper, dict) else {}


SEARCH_SWEEPER = "sweeplab_optuna_sweeper"  # the package of sweeplab's search sweeper
SEEDS_SWEEPER = "sweeplab_seeds_sweeper"  # the package of sweeplab's adaptive-seeds sweeper
DECISIONS = "decisions.csv"  # an adaptive-seeds sweep's verdicts, in its folder


def _target(sweeper: Any) -> str:
    return sweeper if isinstance(sweeper, str) else str(sweeper.get("_target_", ""))


def is_search(sweeper: Any) -> bool:
    """Whether a sweeper (its settings, or its `_target_`) is sweeplab's search sweeper."""
    return SEARCH_SWEEPER in _target(sweeper)


def is_adaptive(sweeper: Any) -> bool:
    """Whether a sweeper (its settings, or its `_target_`) is the adaptive-seeds sweeper."""
    return SEEDS_SWEEPER in _target(sweeper)


def flatten(node: dict[str, Any], prefix: str = "", lists_as_text: bool = False) -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists stay lists, or become their text (so that a table
    can group on them) with `lists_as_text`."""
    flat: dict[str, Any] = {}
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}.", lists_as_text))
        elif isinstance(value, list) and lists_as_text:
            flat[name] = str(value)
        else:
            flat[name] = value
    return flat
