"""sweeplab's entry point: `python run.py [overrides]`, `python run.py -m [sweep overrides]`."""

import logging
import math
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra_plugins.sweeplab_optuna_sweeper import trial_info
from omegaconf import DictConfig

from sweeplab.command_line import check_group_options, check_override_keys, quote_paths
from sweeplab.config import register_configs
from sweeplab.errors import SweeplabError
from sweeplab.modes import record_failure, run_mode
from sweeplab.run_folder import RunLocked, note_failed_job
from sweeplab.run_format import Status, Summary, is_adaptive
from sweeplab.runtime import Interrupted, label_job_lines, quiet_libraries, threads_per_job
from sweeplab.search import objective_of
from sweeplab.sweep_plan import command_of, plan_folder
from sweeplab.train import RESUME

log = logging.getLogger("sweeplab")


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | tuple[float, ...] | None:
    """Run one job; return its `objective` (best val accuracy by default: what a search
    optimises; a tuple for several objectives).

    In a sweep a failing job records `status: failed` and returns NaN so the other jobs go
    on; the sweep-end callback then lists the failures and exits non-zero. A search's trial
    raises instead, so that the sweeper counts the failure with its reason.
    """
    quiet_libraries()  # their INFO lines (matplotlib's font cache) are not the run's
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    if in_sweep:
        label_job_lines(f"[job {hydra_cfg.job.num}]")
    if cfg.dry_run and not in_sweep:  # a sweep's plan is printed before its jobs start
        decision = plan_folder(run_dir, command_of(cfg, str(cfg.stale)))
        print(f"sweeplab: dry run: {run_dir}: {decision.action} ({decision.why}); nothing ran")
        return None
    if cfg.threads == 0:
        cfg.threads = threads_per_job(hydra_cfg.launcher)
    try:
        result = run_mode(cfg, run_dir)
    except RunLocked as locked:  # another process owns this run: not a failure, not ours
        print(f"sweeplab: {locked}", file=sys.stderr)
        return math.nan
    except Interrupted as stop:  # summary.json already says `interrupted`
        print(f"sweeplab: {run_dir}: stopped by {stop.name}; {RESUME}", file=sys.stderr)
        sys.exit(128 + stop.signum)
    except SweeplabError as err:
        print(f"sweeplab: error: {err}", file=sys.stderr)
        record_failure(cfg, run_dir, err)
        if not in_sweep:
            sys.exit(2)
        failure: Exception = err
    except Exception as err:
        record_failure(cfg, run_dir, err)
        if not in_sweep:
            raise
        log.exception("job %s failed", run_dir)
        failure = err
    else:  # outside the try: a pruned trial's TrialPruned is no failure
        if isinstance(result, Summary) and not in_sweep:  # a sweep ends with its report
            figures = ", figures" if cfg.figures and result.status == "completed" else ""
            log.info("run folder: %s (summary.json, metrics.csv, checkpoints/%s)", run_dir, figures)
        if isinstance(result, Summary) and is_adaptive(hydra_cfg.sweeper):
            # seeds until it decides: on the metric the report compares
            return result.test_accuracy if result.status == Status.COMPLETED else math.nan
        return objective_of(cfg, result) if isinstance(result, Summary) else None
    # The job's folder name: its overrides, or their hashed form when they are too long.
    note_failed_job(Path(hydra_cfg.sweep.dir), run_dir.name, failure)
    if trial_info() is not None:
        raise failure
    return math.nan


if __name__ == "__main__":
    register_configs()
    sys.argv[1:] = quote_paths(sys.argv[1:])  # ckpt=<a job folder with = and , in its name>
    try:
        check_override_keys(sys.argv[1:])  # "did you mean", before Hydra's advice to add `+`
        check_group_options(sys.argv[1:])  # one line with the options, not Hydra's twenty
    except SweeplabError as err:
        print(f"sweeplab: error: {err}", file=sys.stderr)
        sys.exit(2)
    try:
        main()
    except KeyboardInterrupt:  # Ctrl-C outside a run's batches (composing, between jobs)
        print("sweeplab: interrupted", file=sys.stderr)
        sys.exit(130)
