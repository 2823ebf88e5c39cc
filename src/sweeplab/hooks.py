"""Run hooks: what a tracker, a search or a benchmark does around a run without touching its loop.

`train_and_evaluate` calls every hook's `start` before its first epoch in this process,
`epoch_end` after each epoch's checkpoint, and `end` once summary.json is written, however
the run ended. A hook never changes what the run computes; `epoch_end` may ask the run to stop
after that epoch (a search's pruner). Trackers (`sweeplab.trackers`) are hooks the config
chooses; callers pass others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from sweeplab.config import RunConfig
    from sweeplab.data import Splits
    from sweeplab.run_format import Summary


@dataclass
class EpochEnd:
    """An epoch that has just ended, its checkpoint written."""

    epoch: int
    model: nn.Module
    data: Splits
    history: list[dict[str, Any]]  # every metrics.csv row so far, this epoch's train and val last

    def row(self, split: str) -> dict[str, Any]:
        """This epoch's metrics row of `split` (train or val)."""
        return next(r for r in reversed(self.history) if r["split"] == split)


class RunHook:
    """Base class: every method does nothing until a hook overrides it."""

    def start(self, run: RunConfig, run_dir: Path, history: list[dict[str, Any]]) -> None:
        """Before the first epoch this process trains; `history` holds the rows a resumed run
        already has (empty for a fresh one)."""

    def epoch_end(self, end: EpochEnd) -> str | None:
        """After an epoch; return a reason to stop the run after it (e.g. pruned), else None."""
        return None

    def end(self, summary: Summary, run_dir: Path) -> None:
        """After summary.json is written: completed, pruned, diverged, failed or interrupted."""
