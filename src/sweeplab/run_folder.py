"""The run-folder contract that analysis reads: metrics.csv, summary.json, checkpoints.

Every write here survives a crash: metrics rows are flushed as they are written, and
summary.json and checkpoints are written to a temporary file and renamed into place.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

import torch

from sweeplab.errors import SweeplabError

METRICS_COLUMNS = ("epoch", "split", "loss", "accuracy", "lr", "seconds", "images_per_second")


class MetricsWriter:
    """Appends rows to metrics.csv and flushes each one, so a crash loses nothing written.

    `rows` first replaces the file (atomically) with exactly those rows: a resumed run passes
    the rows its checkpoint holds, so metrics.csv never gets duplicate or orphaned epochs.
    """

    def __init__(self, path: Path, rows: list[dict[str, Any]] | None = None) -> None:
        self.path = path
        if rows is not None:
            _replace_atomically(path, lambda tmp: _write_rows(tmp, rows))
        new_file = not path.exists() or path.stat().st_size == 0
        self._file = path.open("a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=METRICS_COLUMNS)
        if new_file:
            self._writer.writeheader()
            self._file.flush()

    def write(self, **row: Any) -> None:
        """Write one (epoch, split) row and flush it to disk."""
        self._writer.writerow(_csv_row(row))
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def _write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=METRICS_COLUMNS)
        writer.writeheader()
        writer.writerows(_csv_row(row) for row in rows)


def _csv_row(row: dict[str, Any]) -> dict[str, Any]:
    # Floats with enough digits to compare runs exactly, few enough to read.
    return {
        key: f"{value:.8g}" if isinstance(value := row.get(key), float) else value
        for key in METRICS_COLUMNS
    }


def _replace_atomically(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically; NaN and inf become null so every JSON reader can parse it."""
    clean = {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in data.items()
    }

    def write(tmp: Path) -> None:
        tmp.write_text(json.dumps(clean, indent=2, sort_keys=False) + "\n")

    _replace_atomically(path, write)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """torch.save to a temporary file, then rename: a crash never leaves half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _replace_atomically(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint with `weights_only=True`; raise one clear line when it is unusable."""
    path = Path(path)
    if not path.is_file():
        raise SweeplabError(
            f"checkpoint {path} does not exist: pass ckpt=<run>/checkpoints/best.pt"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for unreadable files
        raise SweeplabError(f"cannot read checkpoint {path}: {err}".splitlines()[0]) from err
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise SweeplabError(f"{path} is not a sweeplab checkpoint (no model state and config)")
    return state
