"""A Hydra callback that stops with one line, before any work, when the run or sweep folder
cannot be written (Hydra would otherwise fail with a traceback when it creates it), and says
so when a sweep was given the single run's folder key, which Hydra ignores with -m."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


def check_writable(folder: Path, key: str, create: bool = True) -> None:
    """Create `folder` and a file in it (without `create`, a dry run's: check that its nearest
    existing folder is writable, leaving no folder behind), or exit 2 with one line naming
    `key`."""
    try:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
        else:
            existing = next(p for p in [folder, *folder.parents] if p.exists())
            if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
                raise PermissionError(13, "Permission denied")
    except OSError as err:
        print(
            f"sweeplab: error: cannot write the output folder {folder} ({err.strerror}): "
            f"pass a writable {key}=...",
            file=sys.stderr,
        )
        sys.exit(2)


class OutputFolderCheck(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_writable(Path(config.hydra.run.dir), "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        given = [
            o for o in config.hydra.overrides.hydra if o.lstrip("+").startswith("hydra.run.dir=")
        ]
        if given:
            print(
                f"sweeplab: warning: {given[0]} is for a single run; a sweep (-m) writes to "
                f"hydra.sweep.dir, here {config.hydra.sweep.dir}: pass hydra.sweep.dir=...",
                file=sys.stderr,
            )
        dry = bool(config.get("dry_run", False))  # a dry run leaves no folder behind
        check_writable(Path(config.hydra.sweep.dir), "hydra.sweep.dir", create=not dry)
