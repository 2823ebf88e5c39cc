"""The end of a multirun: write the report, list the jobs that failed, set the exit status.

Jobs may run in other processes or on other machines (joblib, submitit), so a failing job
leaves a note in `<sweep>/.sweeplab/failed/` (run.py writes it with `note_failed_job`) and
the callback, in the launching process, reads the notes of this invocation when the sweep
ends. Like the rest of analysis/, this module never imports the training code.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def _notes_dir(sweep_dir: Path) -> Path:
    return sweep_dir / ".sweeplab" / "failed"


def note_failed_job(sweep_dir: Path, job: str, error: BaseException) -> None:
    """Leave a note that `job` failed in this sweep (called by the failing job itself)."""
    notes = _notes_dir(sweep_dir)
    notes.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(job.encode()).hexdigest()[:16]
    message = f"{type(error).__name__}: {error}".splitlines()[0]
    (notes / f"{name}.txt").write_text(f"{job}\n{message}\n")


def failed_jobs(sweep_dir: Path) -> dict[str, str]:
    """{job: error line} for the jobs that left a note."""
    jobs = {}
    for note in sorted(_notes_dir(sweep_dir).glob("*.txt")):
        job, _, message = note.read_text().partition("\n")
        jobs[job] = message.strip()
    return jobs


class SweepEnd(Callback):
    """Writes `<sweep>/report/` once the sweep ends and exits 1 when any job failed."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        shutil.rmtree(_notes_dir(Path(config.hydra.sweep.dir)), ignore_errors=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            from analysis.report import Request, write_report

            out = write_report(Request([sweep_dir]))
            log.info("report: %s", out / "report.md")
        except Exception as err:  # a report problem must not hide the sweep's own result
            log.warning("could not write the report: %s", err)
        failed = failed_jobs(sweep_dir)
        if failed:
            print(f"sweeplab: {len(failed)} job(s) failed in {sweep_dir}:", file=sys.stderr)
            for job, error in failed.items():
                print(f"  {job}: {error}", file=sys.stderr)
            sys.exit(1)
