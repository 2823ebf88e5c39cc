"""The run-folder contract that analysis reads: metrics.csv, summary.json, checkpoints, figures.

`Summary` and `Checkpoint` are the typed forms of summary.json and checkpoints/*.pt, each with
its own write and load. Every write here survives a crash: metrics rows are flushed as they
are written, and summary.json and checkpoints go to a temporary file of this process that is
then renamed into place. `decide_start` says what a run does in a folder that already holds
one: skip it, resume it, or start afresh.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import json
import logging
import math
import os
import shutil
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import torch

from sweeplab.errors import SweeplabError
from sweeplab.provenance import DIFF
from sweeplab.tracker_links import TRACKERS

log = logging.getLogger(__name__)

# What a training run writes into its folder (Hydra's .hydra/ and run.log aside).
METRICS = "metrics.csv"
SUMMARY = "summary.json"
CHECKPOINTS = "checkpoints"  # last.pt and best.pt
LEARNING_CURVES = "learning_curves.png"
TEST_SAMPLES = "test_samples.png"
CONFUSION_MATRIX = "confusion_matrix.png"
TRAINING_OUTPUTS = (METRICS, SUMMARY, CHECKPOINTS, LEARNING_CURVES, TEST_SAMPLES, CONFUSION_MATRIX,
                    TRACKERS, DIFF)  # fmt: skip
TENSORBOARD_EVENTS = "events.out.tfevents.*"  # TensorBoard's event files, in the folder itself
LOCK = ".lock"  # flock-ed by the one process working in the folder; names it while it does
FAILED_NOTES = Path(".sweeplab") / "failed"  # in a sweep folder: a note per failed job
METRICS_COLUMNS = ("epoch", "split", "loss", "accuracy", "lr", "seconds", "images_per_second")


# Statuses of a run that is over: a rerun skips it.
FINISHED = ("completed", "pruned")
STALE = "stale"  # in a run folder: the results of other code or data, kept aside by stale=rerun


class RunLocked(SweeplabError):
    """Another live process holds the run folder's lock."""


@contextmanager
def folder_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive OS lock on the run folder while the block runs; raise RunLocked,
    naming the holder, when another process has it. The OS releases the lock when its
    process ends however it ends (kill -9 included), so a lock is never stale."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holder = path.read_text().strip() or "another process"
        raise RunLocked(f"{run_dir} is running in {holder}; skipped here") from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"process {os.getpid()} on host {socket.gethostname()}\n".encode())
        yield
    finally:
        os.ftruncate(fd, 0)
        os.close(fd)  # releases the lock


def now() -> str:
    """The time as summaries record it (UTC, ISO 8601, seconds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def _replace_atomically(path: Path, write: Callable[[Path], None]) -> None:
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
    _replace_atomically(path, lambda tmp: tmp.write_text(json.dumps(clean, indent=2) + "\n"))


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

        _replace_atomically(path, write)
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

    status: str = "failed"  # completed | pruned | diverged | failed | interrupted
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

    def model_label(self) -> str:
        """`lenet5_bn (lenet5 family)`: the preset, and its family where the name differs."""
        if self.model_family and self.model != self.model_family:
            return f"{self.model} ({self.model_family} family)"
        return str(self.model)

    def end(self, status: str, error: BaseException | str | None = None) -> None:
        """Record how the run ended."""
        if isinstance(error, BaseException):
            error = f"{type(error).__name__}: {error}"
        self.status, self.error, self.finished_at = status, error, now()

    def write(self, run_dir: Path) -> None:
        write_json(run_dir / SUMMARY, {f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def load(cls, run_dir: Path) -> Summary | None:
        """The folder's summary; None when it is missing or unreadable."""
        try:
            data = json.loads((run_dir / SUMMARY).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


# --- checkpoints -----------------------------------------------------------------------------


@dataclass
class Checkpoint:
    """checkpoints/last.pt and best.pt: state dicts, tensors and plain values only, so that
    `torch.load(path, weights_only=True)` reads them."""

    config: dict[str, Any]  # the checked config, plain values
    model: dict[str, torch.Tensor]
    config_hash: str | None = None
    normalization: dict[str, float] = field(default_factory=dict)  # mean, std (pixel units)
    classes: list[str] = field(default_factory=list)
    optimizer: dict[str, Any] = field(default_factory=dict)
    scheduler: dict[str, Any] = field(default_factory=dict)
    rng: torch.Tensor | None = None  # torch's CPU generator state after this epoch
    cuda_rng: list[torch.Tensor] = field(default_factory=list)
    epoch: int = 0
    val_accuracy: float | None = None
    best_val_accuracy: float | None = None
    best_epoch: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)  # metrics.csv rows so far
    made_by: list[str | None] = field(default_factory=list)  # [code version, data fingerprint]

    def save(self, path: Path) -> None:
        """torch.save to a temporary file, then rename: a crash never leaves half a checkpoint."""
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {f.name: getattr(self, f.name) for f in fields(self)}  # shallow: no tensor copies
        _replace_atomically(path, lambda tmp: torch.save(state, tmp))

    @classmethod
    def load(cls, path: str | Path) -> Checkpoint:
        """Load with `weights_only=True`; raise one clear line when it is unusable."""
        path = Path(path)
        fix = "pass ckpt=<run>/checkpoints/best.pt"
        if path.is_dir() and (path / CHECKPOINTS / "best.pt").is_file():
            path = path / CHECKPOINTS / "best.pt"  # a run folder: its best checkpoint
        if path.is_dir():
            raise SweeplabError(
                f"checkpoint {path} is a folder, not a checkpoint file or a run folder: {fix}"
            )
        if not path.is_file():
            raise SweeplabError(f"checkpoint {path} does not exist: {fix}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises several types for unreadable files
            reason = f"{type(err).__name__}: {err}".splitlines()[0]
            raise SweeplabError(
                f"cannot read checkpoint {path}: not a file torch.save wrote, or cut short "
                f"({reason}); {fix}"
            ) from err
        if not isinstance(state, dict) or "model" not in state or "config" not in state:
            raise SweeplabError(f"{path} is not a sweeplab checkpoint (no model state and config)")
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in state.items() if key in known})


# --- what to do in a folder that already holds a run -----------------------------------------


@dataclass
class Start:
    """`skip` a completed run, `resume` from `checkpoint`, or start `fresh`."""

    action: Literal["fresh", "skip", "resume"]
    summary: Summary | None = None  # the completed run's summary (skip)
    checkpoint: Checkpoint | None = None  # the last.pt to continue from (resume)


def _mismatch(run_dir: Path, found: str | None, expected: str) -> SweeplabError:
    return SweeplabError(
        f"{run_dir} holds a run of another config (hash {found}, this config {expected}): "
        "results would mix; pass a new hydra.sweep.dir (or hydra.run.dir), or delete that folder"
    )


def decide_start(
    run_dir: Path, expected_hash: str, made_by: list[str | None] | None = None,
    stale: str = "stop",
) -> Start:  # fmt: skip
    """Look at the run folder and say whether to skip, resume or start afresh.

    - `completed` or `pruned` (a search stopped it) with the same config hash: skip, touching
      nothing.
    - interrupted or killed (a `last.pt`, no `completed`): resume from `last.pt`.
    - `failed` or `diverged`, or nothing to resume from: start afresh, clearing the old files.
    - a different config hash: stop, so results of two configs are never mixed.
    - made by another code version or data (`made_by`: [code version, data fingerprint]) than
      this command's: as `stale` says: stop with one line, `rerun` (the old results moved to
      `stale/`) or `keep` (skip or resume as if nothing differed).
    """
    summary = Summary.load(run_dir)
    if summary is not None and summary.config_hash not in (None, expected_hash):
        raise _mismatch(run_dir, summary.config_hash, expected_hash)
    if summary is not None and summary.status in FINISHED:
        if _is_stale(run_dir, _made_by(summary), made_by, stale):
            return Start("fresh")
        return Start("skip", summary=summary)
    last = run_dir / CHECKPOINTS / "last.pt"
    if (summary is None or summary.status not in ("failed", "diverged")) and last.is_file():
        try:
            checkpoint = Checkpoint.load(last)
        except SweeplabError:
            checkpoint = None  # unreadable (e.g. killed mid-write of an old torch): start afresh
        if checkpoint is not None:
            if checkpoint.config_hash != expected_hash:
                raise _mismatch(run_dir, checkpoint.config_hash, expected_hash)
            if _is_stale(run_dir, checkpoint.made_by or [None, None], made_by, stale):
                return Start("fresh")
            return Start("resume", checkpoint=checkpoint)
    clear_training_outputs(run_dir)
    return Start("fresh")


def _made_by(summary: Summary) -> list[str | None]:
    made = summary.provenance or {}
    return [made.get("code_version"), made.get("data_fingerprint")]


def _is_stale(
    run_dir: Path, found: list[str | None], now: list[str | None] | None, stale: str
) -> bool:
    """Whether the run must start afresh (`rerun`: its outputs are moved to stale/ first);
    False to use it as it is; one line when `stale` is `stop`."""
    if now is None or list(found) == list(now) or stale == "keep":
        return False
    if stale != "rerun":
        index = 0 if found[0] != now[0] else 1
        what = ("code version", "data fingerprint")[index]
        raise SweeplabError(
            f"{run_dir} was made by {what} {found[index] or 'unknown'}, not this command's "
            f"{now[index]}: pass stale=rerun to train it again (the old results are kept in its "
            "stale/ folder) or stale=keep to keep it as it is"
        )
    aside = run_dir / STALE / f"{found[0] or 'unknown'}-{datetime.now():%Y%m%d-%H%M%S}"
    aside.mkdir(parents=True, exist_ok=True)
    for name in TRAINING_OUTPUTS:
        if (run_dir / name).exists():
            shutil.move(run_dir / name, aside / name)
    clear_training_outputs(run_dir)  # what could not be moved (tracker files)
    return True


def clear_training_outputs(run_dir: Path) -> None:
    """Remove what an earlier attempt wrote (Hydra's .hydra/ and the log stay)."""
    for name in TRAINING_OUTPUTS:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    for path in run_dir.glob(TENSORBOARD_EVENTS):
        path.unlink(missing_ok=True)


def note_failed_job(sweep_dir: Path, job: str, error: BaseException) -> None:
    """Leave `<sweep>/.sweeplab/failed/<hash>.txt` (the job, then its error line) for the
    sweep-end callback, which may run in another process than the job."""
    notes = sweep_dir / FAILED_NOTES
    notes.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(job.encode()).hexdigest()[:16]
    message = f"{type(error).__name__}: {error}".splitlines()[0]
    (notes / f"{name}.txt").write_text(f"{job}\n{message}\n")
