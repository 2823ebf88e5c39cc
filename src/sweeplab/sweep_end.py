"""A Hydra callback for the end of a multirun: report, list failures, set the exit status."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def sweep_statuses(sweep_dir: Path) -> dict[str, tuple[str, str]]:
    """{job folder: (status, error)} for every summary.json in the sweep."""
    statuses = {}
    for path in sorted(sweep_dir.rglob("summary.json")):
        if "report" in path.relative_to(sweep_dir).parts:
            continue
        try:
            summary = json.loads(path.read_text())
            statuses[str(path.parent.relative_to(sweep_dir))] = (
                summary.get("status", "?"),
                summary.get("error") or "",
            )
        except (OSError, ValueError) as err:
            statuses[str(path.parent.relative_to(sweep_dir))] = ("unreadable", str(err))
    return statuses


class SweepEnd(Callback):
    """Writes `<sweep>/report/` once the sweep ends and exits 1 when any job failed."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        statuses = sweep_statuses(sweep_dir)
        counts: dict[str, int] = {}
        for status, _ in statuses.values():
            counts[status] = counts.get(status, 0) + 1
        log.info("sweep %s: %s", sweep_dir, ", ".join(f"{n} {s}" for s, n in counts.items()))
        try:
            from analysis.report import Request, write_report

            out = write_report(Request([sweep_dir]))
            log.info("report: %s", out / "report.md")
        except Exception as err:  # a report problem must not hide the sweep's own result
            log.warning("could not write the report: %s", err)
        failed = {job: error for job, (status, error) in statuses.items() if status == "failed"}
        if failed:
            print(f"sweeplab: {len(failed)} job(s) failed in {sweep_dir}:", file=sys.stderr)
            for job, error in failed.items():
                print(f"  {job}: {error.splitlines()[-1] if error else ''}", file=sys.stderr)
            sys.exit(1)
