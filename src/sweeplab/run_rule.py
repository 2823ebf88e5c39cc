"""The one rule for a run folder that already exists: what this command does with it.

    decide(FolderState.read(run_dir), Command(config_hash, made_by, stale)) -> Decision

| in the folder                                       | action                                |
|-----------------------------------------------------|---------------------------------------|
| a run of another config (its config hash differs)   | stop: results would mix               |
| completed or pruned, made by this code and data     | skip                                  |
| interrupted or killed (a last.pt), this code, data  | resume from last.pt                   |
| failed, diverged, or nothing to resume from         | run afresh (earlier outputs cleared)  |
| completed, pruned or resumable, made by other code  | stale=stop: stop with one line;       |
| or data                                             | stale=rerun: rerun (old kept aside in |
|                                                     | stale/); stale=keep: skip or resume   |

The run (`sweeplab.train`), the sweep's plan and its dry run (`sweeplab.sweep_plan`) all ask
this function, so a sweep says before any job starts what each job will do. Torch-free: a
folder's state is read from summary.json and checkpoints/last.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from sweeplab.run_format import (
    FINISHED,
    STARTS_AFRESH,
    LastCheckpoint,
    MadeBy,
    Summary,
)


class Action(StrEnum):
    RUN = "run"  # start afresh (what an earlier attempt left is cleared)
    RESUME = "resume"  # continue from checkpoints/last.pt
    SKIP = "skip"  # over already: touch nothing
    RERUN = "rerun"  # made by other code or data: set the old results aside, start afresh
    STOP = "stop"  # refuse, with one line that says why and how to go on


class Stale(StrEnum):
    """What a rerun does with a finished or interrupted run that other code or data made."""

    stop = "stop"  # stop before any work, saying how many and how to go on
    rerun = "rerun"  # train it again; the old results are kept aside in the run's stale/
    keep = "keep"  # keep it as it is, knowingly


@dataclass(frozen=True)
class FolderState:
    """What a run folder holds: its summary and what made its last checkpoint."""

    summary: Summary | None = None
    last: LastCheckpoint | None = None  # None: no checkpoints/last.pt
    last_unreadable: bool = False  # a last.pt that cannot be loaded (killed mid-write)

    @classmethod
    def read(cls, run_dir: Path) -> FolderState:
        return cls(Summary.load(run_dir), LastCheckpoint.load(run_dir))


@dataclass(frozen=True)
class Command:
    """What this command would run: its config hash (None: unknown, not checked), what makes
    its numbers besides the config (None: not checked) and its `stale` setting."""

    config_hash: str | None = None
    made_by: MadeBy | None = None
    stale: str = Stale.stop


@dataclass(frozen=True)
class Decision:
    action: Action
    why: str  # a few words for a dry run's list: "completed already", "after epoch 3"
    message: str = ""  # the one line a stop prints (the folder's path first)
    stale: str = ""  # what differs for a stale run: "code version" or "data fingerprint"
    found: MadeBy | None = None  # what made the folder's run (stale runs)


def decide(state: FolderState, command: Command, run_dir: Path | str = "") -> Decision:
    """What to do with the run folder `run_dir` in `state` (the table above)."""
    summary = state.summary
    if summary is not None and _other(summary.config_hash, command.config_hash):
        return _mismatch(run_dir, summary.config_hash, command.config_hash)
    if summary is not None and summary.status in FINISHED:
        stale = _stale(run_dir, summary.made_by(), command)
        return stale or Decision(Action.SKIP, f"{summary.status} already")
    resumable = summary is None or summary.status not in STARTS_AFRESH
    if resumable and state.last is not None and not state.last_unreadable:
        last = state.last
        if _other(last.config_hash, command.config_hash):
            return _mismatch(run_dir, last.config_hash, command.config_hash)
        found = last.made_by or (summary.made_by() if summary is not None else None)
        stale = _stale(run_dir, found, command) if found is not None else None
        epoch = last.epoch or (summary.epochs_completed if summary is not None else None)
        return stale or Decision(Action.RESUME, f"after epoch {epoch}" if epoch else "from last.pt")
    if state.last_unreadable:
        return Decision(Action.RUN, "its last.pt is unreadable: again")
    return Decision(Action.RUN, f"{summary.status} before: again" if summary else "new")


def _other(found: str | None, expected: str | None) -> bool:
    return found is not None and expected is not None and found != expected


def _mismatch(run_dir: Path | str, found: str | None, expected: str | None) -> Decision:
    return Decision(
        Action.STOP,
        "its folder holds a run of another config",
        f"{run_dir} holds a run of another config (hash {found}, this config {expected}): "
        "results would mix; pass a new hydra.sweep.dir (or hydra.run.dir), or delete that folder",
    )


def _stale(run_dir: Path | str, found: MadeBy, command: Command) -> Decision | None:
    """None when the run may be used as it is; else rerun, or stop with one line."""
    now = command.made_by
    if now is None or found == now or command.stale == Stale.keep:
        return None
    index = 0 if found.code_version != now.code_version else 1
    what = ("code version", "data fingerprint")[index]
    if command.stale == Stale.rerun:
        why = f"made by {what} {found[index] or 'unknown'}: again (stale=rerun)"
        return Decision(Action.RERUN, why, stale=what, found=found)
    return Decision(
        Action.STOP,
        f"made by {what} {found[index] or 'unknown'}: stale=rerun or stale=keep",
        f"{run_dir} was made by {what} {found[index] or 'unknown'}, not this command's "
        f"{now[index]}: pass stale=rerun to train it again (the old results are kept in its "
        "stale/ folder) or stale=keep to keep it as it is",
        stale=what,
        found=found,
    )
