"""The run folder's torch side: checkpoints (`Checkpoint`), the lock that makes one process
its owner, and acting on the one rule (`sweeplab.run_rule.decide`) when a run starts in a
folder that already holds one: skip it, resume it, start afresh, or set the old results aside.
The format itself (file names, summary.json, metrics.csv) is `sweeplab.run_format`'s.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import socket
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import torch

from sweeplab.errors import SweeplabError
from sweeplab.run_format import (
    BEST,
    CHECKPOINTS,
    FAILED_NOTES,
    LAST,
    LOCK,
    STALE,
    TENSORBOARD_EVENTS,
    TRAINING_OUTPUTS,
    LastCheckpoint,
    MadeBy,
    Summary,
    replace_atomically,
)
from sweeplab.run_rule import Action, Command, FolderState, decide

log = logging.getLogger(__name__)


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
        replace_atomically(path, lambda tmp: torch.save(state, tmp))
        if path.name == LAST.name and path.parent.name == CHECKPOINTS:  # for torch-free readers
            made = MadeBy.of_list(self.made_by)
            LastCheckpoint(self.config_hash, self.epoch, made).write(path.parent.parent)

    def save_in(self, run_dir: Path, best: bool) -> None:
        """checkpoints/last.pt after every epoch, and best.pt too when the epoch is the best."""
        if best:
            self.save(run_dir / BEST)
        self.save(run_dir / LAST)

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
        what = (
            "sweeplab's checkpoints are the checkpoints/best.pt and last.pt a training run "
            "writes (torch.save archives of state dicts, tensors and plain values)"
        )
        if not zipfile.is_zipfile(path):  # torch.save writes a zip archive
            raise SweeplabError(
                f"{path} is not a sweeplab checkpoint (or was cut short): {what}; {fix}"
            )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises several types for unreadable files
            # torch's own text advises weights_only=False (unsafe for a file of unknown
            # origin): name the kind of error only
            raise SweeplabError(
                f"cannot read checkpoint {path}: cut short, or not written by sweeplab "
                f"({type(err).__name__}); {what}; {fix}"
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


def decide_start(
    run_dir: Path, expected_hash: str, made_by: Sequence[str | None] | None = None,
    stale: str = "stop",
) -> Start:  # fmt: skip
    """Act on the one rule (`run_rule.decide`) for a run about to start in `run_dir`, with its
    last.pt loaded (what made it, from the checkpoint itself): skip, resume, start afresh
    (clearing what an earlier attempt left; a stale run's results moved to stale/ first), or
    stop with the rule's one line."""
    summary, checkpoint, unreadable = Summary.load(run_dir), None, False
    last = None
    if (run_dir / LAST).is_file():
        try:
            checkpoint = Checkpoint.load(run_dir / LAST)
            made = MadeBy.of_list(checkpoint.made_by)
            last = LastCheckpoint(checkpoint.config_hash, checkpoint.epoch, made)
        except SweeplabError:  # unreadable (e.g. killed mid-write of an old torch)
            last, unreadable = LastCheckpoint(), True
    state = FolderState(summary, last, unreadable)
    now = MadeBy(*made_by) if made_by is not None else None
    decision = decide(state, Command(expected_hash, now, stale), run_dir)
    if decision.action == Action.STOP:
        raise SweeplabError(decision.message)
    if decision.action == Action.SKIP:
        return Start("skip", summary=summary)
    if decision.action == Action.RESUME:
        return Start("resume", checkpoint=checkpoint)
    if decision.action == Action.RERUN:
        set_aside(run_dir, decision.found or MadeBy(None, None))
    clear_training_outputs(run_dir)
    return Start("fresh")


def set_aside(run_dir: Path, found: MadeBy) -> Path:
    """Move a stale run's results to `stale/<its code version>-<time>/` (kept, not deleted)."""
    aside = run_dir / STALE / f"{found.code_version or 'unknown'}-{datetime.now():%Y%m%d-%H%M%S}"
    aside.mkdir(parents=True, exist_ok=True)
    for name in TRAINING_OUTPUTS:
        if (run_dir / name).exists():
            shutil.move(run_dir / name, aside / name)
    return aside


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
