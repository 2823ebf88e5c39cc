"""The end of a multirun: write the report, list the jobs that failed, set the exit status.

Jobs may run in other processes or on other machines (joblib, submitit), so a failing job
leaves a note in `<sweep>/.sweeplab/failed/<hash>.txt` (its job name, then its error line:
sweeplab's `run_folder.note_failed_job` writes them) and the callback, in the launching
process, reads the notes of this invocation when the sweep ends. Like the rest of analysis/,
this module never imports the training code: the note files are the tie.
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from sweeplab.run_format import FAILED_NOTES
from sweeplab.tracker_links import MLFLOW_SWEEP_STATE

log = logging.getLogger(__name__)


def _notes_dir(sweep_dir: Path) -> Path:
    return sweep_dir / FAILED_NOTES


def failed_jobs(sweep_dir: Path) -> dict[str, str]:
    """{job: error line} for the jobs that left a note."""
    jobs = {}
    for note in sorted(_notes_dir(sweep_dir).glob("*.txt")):
        job, _, message = note.read_text().partition("\n")
        jobs[job] = message.strip()
    return jobs


def _options_note(request: Any) -> str:
    """` (with --baseline k=v, ...)` when the report keeps options a user gave it."""
    given = [f"--baseline {k}={v}" for k, v in request.baselines.items()]
    given += [f"--{key} {getattr(request, key)}" for key in ("rows", "cols", "detect")
              if getattr(request, key) is not None]  # fmt: skip
    if request.metric != "test_accuracy":
        given.append(f"--metric {request.metric}")
    return f" (with the options of its last report: {' '.join(given)})" if given else ""


class SweepEnd(Callback):
    """Writes `<sweep>/report/` once the sweep ends and exits 1 when any job failed."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        shutil.rmtree(_notes_dir(Path(config.hydra.sweep.dir)), ignore_errors=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            from analysis.report import saved_request, write_report

            request = saved_request(sweep_dir)  # the options its report was last written with
            out = write_report(request)
            log.info("report: %s%s", out / "report.md", _options_note(request))
            if (sweep_dir / MLFLOW_SWEEP_STATE).is_file():  # logger=mlflow: on the parent run
                from sweeplab.trackers.mlflow import attach_report

                attach_report(sweep_dir, out)
        except Exception as err:  # a report problem must not hide the sweep's own result
            log.warning("could not write the report: %s", err)
        failed = failed_jobs(sweep_dir)
        if failed:
            print(f"sweeplab: {len(failed)} job(s) failed in {sweep_dir}:", file=sys.stderr)
            for job, error in failed.items():
                print(f"  {job}: {error}", file=sys.stderr)
            sys.exit(1)
