"""A job's result on disk the moment the job ends: `<sweep>/.seeds/<key>.json`, written by the
job itself (the task is wrapped), so a crash, kill -9 or Ctrl-C of the sweep command loses no
finished job, whichever launcher ran it."""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hydra_plugins.sweeplab_seeds_sweeper import RECORDS

COMPLETED, FAILED = "completed", "failed"


def job_key(overrides: list[str]) -> str:
    """A stable name for a job: its overrides, in the order the sweeper gives them."""
    return hashlib.sha256("\n".join(overrides).encode()).hexdigest()[:16]


@dataclass
class Record:
    overrides: list[str]
    status: str  # completed or failed
    value: float | None = None
    error: str | None = None
    folder: str | None = None  # the job's output folder

    def write(self, sweep_dir: Path) -> None:
        folder = sweep_dir / RECORDS
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{job_key(self.overrides)}.json"
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(asdict(self)) + "\n")
        tmp.replace(path)  # whole or not at all


def read_records(sweep_dir: Path) -> dict[str, Record]:
    """Every finished job of the sweep, by its key (unreadable files are left out)."""
    records = {}
    for path in sorted((sweep_dir / RECORDS).glob("*.json")):
        try:
            data = json.loads(path.read_text())
            record = Record(**data)
        except (OSError, ValueError, TypeError):
            continue
        records[job_key(record.overrides)] = record
    return records


def outcome(value: Any) -> tuple[str, float | None, str | None]:
    """A returned value as a result: a finite number completes; anything else failed."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return FAILED, None, f"the task returned {value!r}, not a number"
    if not math.isfinite(number):
        return FAILED, None, f"the task returned {value!r}"
    return COMPLETED, number, None


class RecordingTask:
    """The app's task, which also leaves its result in the sweep folder as it ends."""

    def __init__(self, task: Any, sweep_dir: str) -> None:
        self.task, self.sweep_dir = task, sweep_dir

    def __call__(self, cfg: Any) -> Any:
        from hydra.core.hydra_config import HydraConfig

        hydra = HydraConfig.get()
        overrides = [str(o) for o in hydra.overrides.task]
        folder = str(hydra.runtime.output_dir)
        try:
            value = self.task(cfg)
        except BaseException as err:  # the launcher reports it too; the record says failed
            message = f"{type(err).__name__}: {err}".splitlines()[0]
            Record(overrides, FAILED, None, message, folder).write(Path(self.sweep_dir))
            raise
        status, number, error = outcome(value)
        Record(overrides, status, number, error, folder).write(Path(self.sweep_dir))
        return value
