"""Trackers: TensorBoard and MLflow, as run hooks that the `logger` config group chooses.

The run folder stays the source of truth; a tracker is a copy of it where users already look.
Each tracker writes from the same rows the run folder holds (metrics.csv's, summary.json's
fields, the checked config), so `analysis/export.py` fills a tracker from the files of any
run, live-logged or not, with the same code. A tracker's package is imported only when it is
chosen; a tracker that fails warns once and leaves the run alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from sweeplab.config import LoggerConfig
from sweeplab.errors import SweeplabError
from sweeplab.hooks import RunHook
from sweeplab.run_format import flatten, read_multirun, read_overrides
from sweeplab.tracker_links import MLFLOW_SWEEP_STATE

INSTALL = 'pip install -e ".[trackers]"'  # TensorBoard and MLflow, as the README says


def tracker_hooks(logger: LoggerConfig) -> list[RunHook]:
    """The hooks of the chosen trackers; one clear line when a tracker's package is missing."""
    hooks: list[RunHook] = []
    try:
        if logger.tensorboard is not None:
            from sweeplab.trackers.tensorboard import TensorBoardTracker

            hooks.append(TensorBoardTracker())
        if logger.mlflow is not None:
            from sweeplab.trackers.mlflow import MLflowTracker

            hooks.append(MLflowTracker(logger.mlflow))
    except ImportError as err:
        raise SweeplabError(
            f"logger: the tracker's package is not installed ({err.name}): {INSTALL}"
        ) from err
    return hooks


def tracked_config(config: dict[str, Any]) -> dict[str, Any]:
    """A config as trackers show it: flattened (`a.b`), without the `logger` settings."""
    return {k: v for k, v in flatten(config).items() if k.split(".")[0] != "logger"}


def display_name(folder: Path) -> str:
    """A folder as a tracker names it: relative to here when below it (multirun/wd_vs_noise),
    else from its `multirun` or `outputs` folder on, else by its own name (~/sweeps/x: x)."""
    folder = folder.resolve()
    try:
        return str(folder.relative_to(Path.cwd()))
    except ValueError:
        pass
    parts = folder.parts
    roots = [i for i, part in enumerate(parts) if part in ("multirun", "outputs")]
    return str(Path(*parts[roots[-1] :])) if roots else folder.name  # the sweep's own name


def swept_name(run_dir: Path) -> str:
    """A sweep's job as trackers list it: the values its sweep varies (`weight_decay=0.01,
    seed=1`, each key by its last part), since the keys every job shares make all names look
    alike; a search's trial by its folder (`trial-003`); the folder's name when the sweep's
    record is missing."""
    name = run_dir.name
    if name.startswith(("trial-", "confirm-")):
        return name
    multirun, mine = read_multirun(run_dir.parent), read_overrides(run_dir)
    if multirun is None or mine is None:
        return name
    task = ((multirun.get("hydra") or {}).get("overrides") or {}).get("task") or []
    try:  # Hydra's own grammar says which overrides sweep (a,b; range(); choice(); ...)
        parsed = OverridesParser.create().parse_overrides([str(o) for o in task])
    except Exception:
        return name
    swept = {o.key_or_group for o in parsed if o.is_sweep_override()}
    shown = [o.split("=", 1) for o in mine if o.split("=", 1)[0].lstrip("+~") in swept]
    # the last part of each key (`weight_decay`, not `regularization.weight_decay`), so that
    # what differs shows in a tracker's narrow name column; in full where two would read alike
    last = [key.lstrip("+~").split(".")[-1] for key, _ in shown]
    pairs = zip(shown, last, strict=True)
    return (
        ",".join(f"{end if last.count(end) == 1 else key}={value}" for (key, value), end in pairs)
        or name
    )


def epoch_metrics(row: dict[str, Any]) -> dict[str, float]:
    """One metrics.csv row as tracker metrics: `<split>_loss`, `<split>_accuracy`, and for
    training rows also `lr` and `images_per_second`."""
    split = row["split"]
    metrics = {f"{split}_loss": row["loss"], f"{split}_accuracy": row["accuracy"]}
    if split == "train":
        metrics["lr"] = row.get("lr")
        metrics["images_per_second"] = row.get("images_per_second")
    return {key: float(value) for key, value in metrics.items() if _number(value)}


def _number(value: Any) -> bool:
    try:
        return value is not None and float(value) == float(value)  # not None, not NaN
    except (TypeError, ValueError):
        return False


class SweepTrackersEnd(Callback):
    """After a multirun, in the launching process: close the sweep's MLflow parent run, when
    a job made one (FAILED when a job failed, else FINISHED)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = Path(config.hydra.sweep.dir)
        from sweeplab.run_format import FAILED_NOTES

        if (sweep / MLFLOW_SWEEP_STATE).is_file():
            from sweeplab.trackers.mlflow import close_parent

            close_parent(sweep, failed=any((sweep / FAILED_NOTES).glob("*.txt")))
