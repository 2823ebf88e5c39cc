"""TensorBoard: event files in the run folder itself, so `tensorboard --logdir multirun/<sweep>`
names each run by its job folder.

Scalars per epoch (`train/loss`, `train/accuracy`, `val/loss`, `val/accuracy`, `lr`,
`images_per_second`), `test/loss` and `test/accuracy` at the last epoch, and one HParams
session per run. TensorBoard's HParams dashboard drops runs whose hyperparameter keys differ
from the others' (tensorboard#5596), so every run logs the same keys: a fixed set every config
has (CORE_KEYS) plus the keys its command line set, which all jobs of a sweep share. A resumed
run rewrites its log from the rows its checkpoint holds, so no step is ever logged twice.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tensorboard.compat.proto.summary_pb2 import Summary as SummaryProto
from tensorboard.compat.proto.summary_pb2 import SummaryMetadata
from tensorboard.plugins.hparams import api_pb2, metadata, summary_v2
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData, SessionEndInfo
from torch.utils.tensorboard import SummaryWriter

from sweeplab.config import STUDY_GROUPS, RunConfig, as_container, runtime_keys
from sweeplab.hooks import EpochEnd, RunHook
from sweeplab.provenance import provenance_markdown
from sweeplab.run_format import TENSORBOARD_EVENTS, Summary, read_overrides
from sweeplab.trackers import epoch_metrics, tracked_config

CORE_KEYS = ("variant", "model.name", "dataset.name", "input_size", "optimizer.name",
             "optimizer.lr", "scheduler.name", "regularization.weight_decay",
             "regularization.noise_std", "regularization.label_smoothing",
             "regularization.hflip", "tta", "epochs", "batch_size", "seed")  # fmt: skip
HPARAMS_METRICS = ("val/accuracy", "test/accuracy", "val/loss", "train/loss", "train/accuracy")
# HParams knows success, failure, running and unknown: a pruned run ended as the search meant,
# an interrupted one may yet resume.
SESSION_STATUS = {
    "completed": api_pb2.STATUS_SUCCESS,
    "pruned": api_pb2.STATUS_SUCCESS,
    "interrupted": api_pb2.STATUS_UNKNOWN,
}  # fmt: skip  (else STATUS_FAILURE)


def scalar_tag(metric: str) -> str:
    """`val_accuracy` -> `val/accuracy`: TensorBoard groups tags by their first part."""
    split, _, name = metric.partition("_")
    return f"{split}/{name}" if split in ("train", "val", "test") else metric


def hparams(config: dict[str, Any], run_dir: Path) -> dict[str, bool | int | float | str]:
    """The run's HParams: CORE_KEYS, then every key its command line set (a group choice,
    e.g. `model=custom_mlp_1`, by the option's name), as TensorBoard's types."""
    values: dict[str, Any] = {key: config.get(key) for key in CORE_KEYS}
    skipped = {*STUDY_GROUPS, *runtime_keys()}
    for override in read_overrides(run_dir) or []:
        key, _, value = override.lstrip("+~").partition("=")
        if key not in skipped and not key.startswith("hydra."):
            values[key] = config.get(key, value)
    # A key without a value (null) is left out: TensorBoard shows it blank, not as "null".
    return {key: _tensorboard_value(v) for key, v in values.items() if v is not None}


def _tensorboard_value(value: Any) -> bool | int | float | str:
    return value if isinstance(value, bool | int | float | str) else str(value)


class EventLog:
    """One run's TensorBoard log, written afresh: older event files of the folder go first."""

    def __init__(self, run_dir: Path, config: dict[str, Any]) -> None:
        for old in run_dir.glob(TENSORBOARD_EVENTS):
            old.unlink()
        self.writer = SummaryWriter(log_dir=str(run_dir))
        # TensorBoard's own writer of the session (torch's stores booleans as 1.0); the trial
        # id is the job folder's name, which the HParams table shows whole.
        values = hparams(config, run_dir)
        session = summary_v2.hparams_pb(values, trial_id=run_dir.name)
        self.writer.file_writer.add_summary(session)
        # The experiment's metrics in the order the HParams table should show (and colour by)
        # them: val accuracy first, not images per second.
        experiment = summary_v2.hparams_config_pb(
            hparams=[summary_v2.HParam(key) for key in values],
            metrics=[summary_v2.Metric(tag) for tag in HPARAMS_METRICS],
        )
        self.writer.file_writer.add_summary(experiment)

    def rows(self, rows: list[dict[str, Any]]) -> None:
        """metrics.csv rows at their epochs."""
        for row in rows:
            for metric, value in epoch_metrics(row).items():
                self.writer.add_scalar(scalar_tag(metric), value, int(row["epoch"]))
        self.writer.flush()

    def close(self, status: str, provenance: dict[str, Any] | None = None) -> None:
        """End the HParams session with the run's status, write what made the run (the Text
        tab's `provenance`) and close the files."""
        if provenance:
            self.writer.add_text("provenance", provenance_markdown(provenance))
        code = SESSION_STATUS.get(status, api_pb2.STATUS_FAILURE)
        self.writer.file_writer.add_summary(_session_end(code))
        self.writer.close()


def _session_end(status: int) -> SummaryProto:
    """The HParams plugin's session-end record (torch's helper knows only success)."""
    info = SessionEndInfo(status=status, end_time_secs=time.time())
    content = HParamsPluginData(session_end_info=info, version=metadata.PLUGIN_DATA_VERSION)
    plugin = SummaryMetadata.PluginData(
        plugin_name=metadata.PLUGIN_NAME, content=content.SerializeToString()
    )
    value = SummaryProto.Value(
        tag=metadata.SESSION_END_INFO_TAG, metadata=SummaryMetadata(plugin_data=plugin)
    )
    return SummaryProto(value=[value])


def write_log(
    run_dir: Path, config: dict[str, Any], rows: list[dict[str, Any]], status: str,
    provenance: dict[str, Any] | None = None,
) -> None:  # fmt: skip
    """A whole run's log from its files (analysis/export.py)."""
    log = EventLog(run_dir, config)
    log.rows(rows)
    log.close(status, provenance)


def logged_steps(run_dir: Path) -> dict[str, list[int]]:
    """Steps per scalar tag in the folder's event files, as TensorBoard's own reader sees them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir))
    events.Reload()
    return {tag: [event.step for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


class TensorBoardTracker(RunHook):
    """`logger=tensorboard`: the run's log, epoch by epoch."""

    log: EventLog | None = None

    def start(self, run: RunConfig, run_dir: Path, history: list[dict[str, Any]]) -> None:
        self.log = EventLog(run_dir, tracked_config(as_container(run)))
        self.log.rows(history)  # a resumed run's epochs, once each

    def epoch_end(self, end: EpochEnd) -> str | None:
        assert self.log is not None
        self.log.rows([end.row("train"), end.row("val")])
        return None

    def end(self, summary: Summary, run_dir: Path) -> None:
        if self.log is None:
            return
        if summary.test_accuracy is not None and summary.epochs:  # metrics.csv's test row
            test = {"epoch": summary.epochs, "split": "test",
                    "loss": summary.test_loss, "accuracy": summary.test_accuracy}  # fmt: skip
            self.log.rows([test])
        self.log.close(summary.status, summary.provenance)
