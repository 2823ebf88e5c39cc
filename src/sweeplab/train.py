"""One training run, top to bottom: `train_and_evaluate(cfg, run_dir) -> Summary`.

Check the config -> skip, resume or start afresh -> threads, device, seed -> model -> data ->
optimizer and schedule -> the epoch loop (train, validate, checkpoint) -> test once ->
figures -> summary.json. Everything needed to continue after a crash or Ctrl-C goes into
`checkpoints/last.pt` at the end of each epoch (model, optimizer, scheduler, RNG state, epoch,
the metrics rows so far), so a resumed run rewrites metrics.csv up to that epoch and ends
exactly as an uninterrupted run would.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from sweeplab.config import RunConfig, as_container, check_config, chosen_option, config_hash
from sweeplab.data import Splits, data_fingerprint, load_splits
from sweeplab.datasets import dataset_spec
from sweeplab.epoch import (
    EpochResult,
    EvalResult,
    TrainSettings,
    evaluate,
    steps_per_epoch,
    train_epoch,
)
from sweeplab.errors import SweeplabError
from sweeplab.hooks import EpochEnd, RunHook
from sweeplab.models import build_model, count_parameters
from sweeplab.optim import build_optimizer, build_scheduler
from sweeplab.provenance import code_version, record, save_diff
from sweeplab.run_folder import Checkpoint, Start, decide_start, folder_lock
from sweeplab.run_format import (
    METRICS,
    MadeBy,
    MetricsWriter,
    Status,
    Summary,
)
from sweeplab.runtime import (
    Interrupted,
    StopSignals,
    memory_format,
    peak_rss_mb,
    seconds_since_process_start,
    set_up,
)
from sweeplab.search import search_hooks
from sweeplab.trackers import tracker_hooks

log = logging.getLogger(__name__)
RESUME = "run the same command again to resume after the last completed epoch"

# Jobs this process has started: the first counts its start-up from the process's own start.
_jobs_started = 0


@dataclass
class Progress:
    """How far a run has got; saved in every checkpoint and restored on resume."""

    epoch: int = 0
    best_val_accuracy: float | None = None
    best_epoch: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)  # metrics.csv rows so far
    diverged: str | None = None  # the error text when the loss became NaN or inf
    pruned: str | None = None  # why a hook (a search's pruner) stopped the run after an epoch
    compile_seconds: float | None = None  # the first batch with compile=true (not saved)

    @property
    def train_seconds(self) -> float:
        return sum(row["seconds"] for row in self.history if row["split"] == "train")

    @property
    def eval_seconds(self) -> float:
        return sum(row["seconds"] for row in self.history if row["split"] != "train")

    @property
    def images_per_second(self) -> float | None:
        rows = [row for row in self.history if row["split"] == "train"]
        images = sum(row["seconds"] * row["images_per_second"] for row in rows)
        return images / self.train_seconds if self.train_seconds > 0 else None

    def reached(self, epoch: int, val_accuracy: float) -> bool:
        """Epoch `epoch` is done with this val accuracy; True when it is the best so far (the
        choice is made on val, never on test)."""
        self.epoch = epoch
        best = self.best_val_accuracy is None or val_accuracy > self.best_val_accuracy
        if best:
            self.best_val_accuracy, self.best_epoch = val_accuracy, epoch
        return best


def train_and_evaluate(cfg: DictConfig, run_dir: Path, hooks: Sequence[RunHook] = ()) -> Summary:
    """Train, keep the best checkpoint by val accuracy, test the final model, write everything.

    Returns the summary, also written as summary.json; a run that raises or is interrupted
    still writes its summary before the exception goes on. `hooks` run beside the trackers
    the config chooses (`sweeplab.hooks`).
    """
    started = _start_time()
    run = check_config(cfg)
    spec = dataset_spec(run.dataset.name)
    # Trackers and a search's trial reporter; a missing tracker package stops here, before work.
    chosen = [*tracker_hooks(run.logger), *search_hooks()]
    with ExitStack() as held:  # released in reverse: summary written, signals restored, unlocked
        held.enter_context(folder_lock(run_dir))  # one owner; another process gets RunLocked
        # What makes this run's numbers besides its config: skip or resume only what the same
        # code and data made (run.stale says what to do with the rest).
        made_by = MadeBy(code_version(), data_fingerprint(run.dataset))
        start = decide_start(run_dir, config_hash(run), made_by, run.stale)
        if start.action == "skip":
            log.info("%s: already completed with this config; skipped", run_dir)
            assert start.summary is not None
            return start.summary
        summary = Summary.starting(run, config_hash(run), chosen_option("model"))
        stop = held.enter_context(StopSignals(partial(_note_signal, summary, run_dir)).installed())
        active: list[RunHook] = []  # told of the end however the run ends, once they started
        held.enter_context(_summary_written(summary, run_dir, active))

        device = set_up(run.threads, run.device, run.seed)  # the seed fixes the initial weights
        summary.provenance = _provenance(run_dir, start, made_by, str(device))
        # Built before the data loads, so a model that cannot take the input size stops at once.
        model = build_model(run.model, spec.channels, run.input_size, spec.num_classes)
        model = model.to(device, memory_format=memory_format(model, device))
        data = _load_data(run, device)
        if run.compile:
            model.compile()  # in place: state_dict keys stay those of the plain model
        _record_setup(summary, model, data, device)
        optimizer = build_optimizer(model, run.optimizer, run.regularization.weight_decay)
        steps = steps_per_epoch(len(data.train_y), run.batch_size)
        scheduler = build_scheduler(optimizer, run.scheduler, steps * run.epochs)
        progress = Progress()
        if start.checkpoint is not None:
            progress = _restore(start.checkpoint, model, optimizer, scheduler)
            log.info("resuming %s after epoch %d of %d", run_dir, progress.epoch, run.epochs)
        saved = CheckpointContext(run, summary.config_hash, data, made_by)
        settings = TrainSettings(
            run.batch_size,
            run.regularization.noise_std / data.std,  # pixel units -> normalised units
            run.regularization.label_smoothing, run.regularization.hflip, run.amp, run.progress,
        )  # fmt: skip
        metrics = MetricsWriter(run_dir / METRICS, progress.history)
        record = partial(_record_row, metrics, progress)
        for hook in [*chosen, *hooks]:
            hook.start(run, run_dir, list(progress.history))
            active.append(hook)
        summary.startup_seconds = round(time.perf_counter() - started - data.load_seconds, 3)
        try:
            for epoch in range(progress.epoch + 1, run.epochs + 1):
                result = train_epoch(
                    model, optimizer, scheduler, data.train_x, data.train_y, settings,
                    description=f"epoch {epoch}/{run.epochs}", before_batch=stop.check,
                )  # fmt: skip
                _note_compile(progress, result, run.compile)
                lr = optimizer.param_groups[0]["lr"]
                record({"epoch": epoch, "split": "train", **result.row(), "lr": lr})
                if result.diverged:
                    progress.diverged = (
                        f"training loss became {result.loss} in epoch {epoch}: "
                        "lower optimizer.lr or add model.batch_norm=true"
                    )
                    log.error("diverged: %s", progress.diverged)
                    break
                val = evaluate(model, data.val_x, data.val_y, run.eval_batch_size, run.amp, run.tta)
                record({"epoch": epoch, "split": "val", **val.row(), "lr": lr})
                _log_epoch(epoch, run.epochs, result, val)
                best = progress.reached(epoch, val.accuracy)  # chosen on val, never test
                saved.at_epoch(model, optimizer, scheduler, progress, val).save_in(run_dir, best)
                ended = EpochEnd(epoch, model, data, progress.history)
                reasons = [reason for hook in active if (reason := hook.epoch_end(ended))]
                if reasons:
                    progress.pruned = reasons[0]
                    log.info("stopped after epoch %d: %s", epoch, progress.pruned)
                    break
                stop.check()
            if progress.diverged or progress.pruned:  # metrics and checkpoints stay; no test
                summary.end(Status.DIVERGED if progress.diverged else Status.PRUNED,
                            progress.diverged or progress.pruned)  # fmt: skip
                return summary
            test = evaluate(model, data.test_x, data.test_y, run.eval_batch_size, run.amp, run.tta)
            lr = optimizer.param_groups[0]["lr"]
            record({"epoch": run.epochs, "split": "test", **test.row(), "lr": lr})
        finally:  # however the epochs ended (an interrupt too), the summary says how far
            _record_progress(summary, progress)
            metrics.close()
        _record_test(summary, progress, test)
        if run.figures:
            from sweeplab.figures import draw_run_figures  # matplotlib: only when drawing

            drawing = time.perf_counter()
            draw_run_figures(run_dir, data, test.predictions)
            summary.figures_seconds = round(time.perf_counter() - drawing, 3)
        summary.end(Status.COMPLETED)
    return summary


def _start_time() -> float:
    """When this job started: the process's start for its first job (start-up counts from the
    command when it can), else now."""
    global _jobs_started
    entered = time.perf_counter()
    since_start = seconds_since_process_start() if _jobs_started == 0 else None
    _jobs_started += 1
    return entered - (since_start or 0.0)


def _load_data(run: RunConfig, device: torch.device) -> Splits:
    """The run's splits on its device, timed; a batch larger than the training split stops."""
    loading = time.perf_counter()
    data = load_splits(run.dataset, run.input_size, run.resize).to(device)
    data.load_seconds = time.perf_counter() - loading
    if run.batch_size > len(data.train_y):
        raise SweeplabError(
            f"invalid config: batch_size={run.batch_size}: the training split has only "
            f"{len(data.train_y)} images, so every epoch would be one step; use a smaller "
            "batch_size (or a larger dataset.subset)"
        )
    return data


def _record_row(metrics: MetricsWriter, progress: Progress, row: dict[str, Any]) -> None:
    """One metrics.csv row: on disk at once, and in the history the checkpoints keep."""
    metrics.write(row)
    progress.history.append(row)


def _note_compile(progress: Progress, result: EpochResult, compiled: bool) -> None:
    if compiled and progress.compile_seconds is None:
        progress.compile_seconds = result.first_batch_seconds
        log.info("compile=true: the first batch took %.1f s", result.first_batch_seconds)


def _log_epoch(epoch: int, epochs: int, result: EpochResult, val: EvalResult) -> None:
    log.info(
        "epoch %d/%d: train loss %.4f acc %.2f%% | val loss %.4f acc %.2f%% | %.1f s, %s img/s",
        epoch, epochs, result.loss, 100 * result.accuracy, val.loss, 100 * val.accuracy,
        result.seconds, f"{result.images_per_second:,.0f}",
    )  # fmt: skip


def _record_setup(summary: Summary, model: nn.Module, data: Splits, device: torch.device) -> None:
    """The model and data the run trains on, in its summary and in one log line."""
    summary.params = count_parameters(model)
    summary.device, summary.torch_version = str(device), torch.__version__
    summary.train_size, summary.val_size = len(data.train_y), len(data.val_y)
    summary.test_size, summary.data_source = len(data.test_y), data.source
    summary.data_seconds = round(data.load_seconds, 3)
    log.info(
        "%s (%s parameters) on %s, %d train / %d val / %d test images (%.2f s), %s, "
        "%d torch thread(s)",
        summary.model_label(), f"{summary.params:,}", summary.dataset, summary.train_size,
        summary.val_size, summary.test_size, data.load_seconds, device, torch.get_num_threads(),
    )  # fmt: skip


def _record_test(summary: Summary, progress: Progress, test: EvalResult) -> None:
    summary.test_loss, summary.test_accuracy = test.loss, test.accuracy
    summary.eval_seconds = round(progress.eval_seconds, 3)
    log.info(
        "test loss %.4f acc %.2f%% (best val %.2f%% at epoch %d); %.1f s training",
        test.loss, 100 * test.accuracy, 100 * (progress.best_val_accuracy or 0),
        progress.best_epoch or 0, progress.train_seconds,
    )  # fmt: skip


@dataclass(frozen=True)
class CheckpointContext:
    """What every checkpoint of a run holds besides its training state."""

    run: RunConfig
    config_hash: str | None
    data: Splits
    made_by: MadeBy

    def at_epoch(
        self, model: nn.Module, optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler, progress: Progress, val: EvalResult,
    ) -> Checkpoint:  # fmt: skip
        """The checkpoint after `progress.epoch`: enough to continue exactly from there."""
        return Checkpoint(
            config=as_container(self.run),
            config_hash=self.config_hash,
            normalization={"mean": self.data.mean, "std": self.data.std},
            classes=list(self.data.classes),
            made_by=list(self.made_by),
            model=model.state_dict(),
            optimizer=optimizer.state_dict(),
            scheduler=scheduler.state_dict(),
            rng=torch.get_rng_state(),
            cuda_rng=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            epoch=progress.epoch,
            val_accuracy=val.accuracy,
            best_val_accuracy=progress.best_val_accuracy,
            best_epoch=progress.best_epoch,
            history=list(progress.history),
        )


@contextmanager
def _summary_written(summary: Summary, run_dir: Path, hooks: list[RunHook]) -> Iterator[None]:
    """Write summary.json however the block ends (completed, pruned, diverged, failed or
    interrupted), then tell the hooks."""
    try:
        yield
    except Interrupted as stop:
        summary.end(Status.INTERRUPTED, f"{stop.name}: stopped between two batches; {RESUME}")
        raise
    except KeyboardInterrupt:
        summary.end(Status.INTERRUPTED, f"KeyboardInterrupt; {RESUME}")
        raise
    except Exception as err:
        summary.end(Status.FAILED, err)
        raise
    finally:
        summary.write(run_dir)
        for hook in hooks:
            try:
                hook.end(summary, run_dir)
            except Exception as err:  # a hook must never cost the run's own result
                log.warning("%s at the run's end failed: %s", type(hook).__name__, err)


def _record_progress(summary: Summary, progress: Progress) -> None:
    """What the epochs so far reached: best val accuracy and epoch, epochs, seconds."""
    summary.best_val_accuracy, summary.best_epoch = progress.best_val_accuracy, progress.best_epoch
    summary.epochs_completed = progress.epoch
    summary.train_seconds = round(progress.train_seconds, 3)
    ips = progress.images_per_second
    summary.images_per_second = round(ips, 1) if ips else ips
    compiled = progress.compile_seconds
    summary.compile_seconds = round(compiled, 2) if compiled is not None else None
    summary.peak_rss_mb = peak_rss_mb()


def _note_signal(summary: Summary, run_dir: Path, signum: int) -> None:
    """Under submitit: say in the folder that the cluster signalled the job (it goes on).
    The first signal is the news (SIGUSR2: preempted); the SIGTERM with which SLURM then ends
    the requeued job says nothing new, so it does not overwrite that note."""
    noted = summary.error and "from the cluster" in summary.error
    if summary.status == Status.INTERRUPTED and noted:
        return
    name = signal.Signals(signum).name
    summary.end(Status.INTERRUPTED, f"{name} from the cluster; submitit requeues a preempted job")
    summary.write(run_dir)


def _provenance(run_dir: Path, start: Start, made_by: MadeBy, device: str) -> dict[str, Any]:
    """What made the run: kept from its first attempt when it resumes, else recorded now (with
    the uncommitted diff saved beside the summary when the tree is dirty)."""
    if start.action == "resume":
        earlier = Summary.load(run_dir)
        made = earlier.provenance if earlier else None
        if made and MadeBy.of(made) == made_by:
            return made
    made = record(torch.get_num_threads(), device, made_by.data_fingerprint)
    if made["dirty"]:
        save_diff(run_dir)
    return made


def _restore(
    checkpoint: Checkpoint,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> Progress:
    """Load a last.pt into the training objects and the global RNG."""
    model.load_state_dict(checkpoint.model)
    optimizer.load_state_dict(checkpoint.optimizer)
    scheduler.load_state_dict(checkpoint.scheduler)
    torch.set_rng_state(checkpoint.rng)
    if checkpoint.cuda_rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(checkpoint.cuda_rng)
    return Progress(
        epoch=checkpoint.epoch,
        best_val_accuracy=checkpoint.best_val_accuracy,
        best_epoch=checkpoint.best_epoch,
        history=list(checkpoint.history),
    )
