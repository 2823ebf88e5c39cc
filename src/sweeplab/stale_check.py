"""A Hydra callback that stops a sweep with one line, before any work, when its folder holds
runs that another code version made (a rerun after a code change would otherwise skip them and
report their old numbers as this code's). `stale=rerun` or `stale=keep` says how to go on; each
run then applies it (`run_folder.decide_start`), which also checks the data fingerprint."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from sweeplab.config import STALE_CHOICES, Stale
from sweeplab.provenance import UNKNOWN, code_version

USED = ("completed", "pruned", "interrupted")  # what a rerun would skip or resume


def stale_runs(sweep_dir: Path, current: str) -> Counter[str]:
    """Runs of the sweep folder that a rerun would use, made by another code version: count
    per code version (`unknown` for runs written before sweeplab recorded it)."""
    found: Counter[str] = Counter()
    for path in sweep_dir.glob("*/summary.json"):
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(summary, dict) or summary.get("status") not in USED:
            continue
        made = (summary.get("provenance") or {}).get("code_version") or UNKNOWN
        if made != current:
            found[made] += 1
    return found


class StaleRunsCheck(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        stale = str(config.get("stale", Stale.stop))
        if stale not in list(Stale):  # before any job, rather than once per job
            print(
                f"sweeplab: error: invalid config: stale={stale!r}: {STALE_CHOICES}",
                file=sys.stderr,
            )
            sys.exit(2)
        if stale != Stale.stop or config.get("dry_run"):  # a dry run lists them instead
            return
        current = code_version()
        sweep_dir = Path(config.hydra.sweep.dir)
        found = stale_runs(sweep_dir, current)
        if not found:
            return
        by = ", ".join(f"{n} by {version}" for version, n in found.most_common())
        print(
            f"sweeplab: error: {sum(found.values())} run(s) in {sweep_dir} were made by another "
            f"code version ({by}; this code is {current}): pass stale=rerun to train them again "
            "(their old results are kept in each run's stale/ folder) or stale=keep to keep them "
            "as they are",
            file=sys.stderr,
        )
        sys.exit(2)
