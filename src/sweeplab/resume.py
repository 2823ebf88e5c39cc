"""What to do when a run starts in a folder that already holds a run (a sweep run again).

- `completed` with the same config hash: skip, touching nothing.
- interrupted or killed (a `last.pt`, no `completed`): resume from `last.pt`.
- `failed` or `diverged`, or nothing to resume from: start afresh, clearing the old files.
- a different config hash: stop, so results of two configs are never mixed.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sweeplab.errors import SweeplabError
from sweeplab.run_folder import load_checkpoint

RUN_FILES = (
    "metrics.csv",
    "summary.json",
    "learning_curves.png",
    "test_samples.png",
    "confusion_matrix.png",
)


@dataclass
class Start:
    action: Literal["fresh", "skip", "resume"]
    summary: dict[str, Any] | None = None  # the completed run's summary (skip)
    state: dict[str, Any] | None = None  # the last.pt to continue from (resume)


def _read_summary(path: Path) -> dict[str, Any] | None:
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # missing or unreadable: judge by the checkpoint alone
    return summary if isinstance(summary, dict) else None


def _mismatch(run_dir: Path, found: str | None, expected: str) -> SweeplabError:
    return SweeplabError(
        f"{run_dir} holds a run of another config (hash {found}, this config {expected}): "
        "results would mix; pass a new hydra.sweep.dir (or hydra.run.dir), or delete that folder"
    )


def decide_start(run_dir: Path, expected_hash: str) -> Start:
    """Look at the run folder and say whether to skip, resume or start afresh."""
    summary = _read_summary(run_dir / "summary.json")
    if summary is not None and summary.get("config_hash") not in (None, expected_hash):
        raise _mismatch(run_dir, summary.get("config_hash"), expected_hash)
    if summary is not None and summary.get("status") == "completed":
        return Start("skip", summary=summary)
    status = summary.get("status") if summary else None
    last = run_dir / "checkpoints" / "last.pt"
    if status not in ("failed", "diverged") and last.is_file():
        try:
            state = load_checkpoint(last)
        except SweeplabError:
            state = None  # unreadable (e.g. killed mid-write of an old torch): start afresh
        if state is not None:
            if state.get("config_hash") != expected_hash:
                raise _mismatch(run_dir, state.get("config_hash"), expected_hash)
            return Start("resume", state=state)
    clear_run_files(run_dir)
    return Start("fresh")


def clear_run_files(run_dir: Path) -> None:
    """Remove what an earlier attempt wrote (Hydra's .hydra/ and the log stay)."""
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
