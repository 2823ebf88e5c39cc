"""The epoch loop of a training run: train, validate, log, checkpoint; resumable at any epoch.

Everything needed to continue after a crash or Ctrl-C goes into `checkpoints/last.pt` at the
end of each epoch: model, optimizer, scheduler, RNG state, the epoch, and the metrics rows so
far, so a resumed run rewrites metrics.csv up to that epoch and ends exactly as an
uninterrupted run would.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sweeplab.config import RunConfig
from sweeplab.data import Splits
from sweeplab.run_folder import MetricsWriter, save_checkpoint
from sweeplab.training import evaluate, train_epoch

log = logging.getLogger(__name__)


@dataclass
class Progress:
    """How far a run has got; saved in every checkpoint and restored on resume."""

    epoch: int = 0
    best_val_accuracy: float | None = None
    best_epoch: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)  # metrics.csv rows so far
    diverged: str | None = None  # the error text when the loss became NaN or inf
    compile_seconds: float | None = None  # the first batch with compile=true (not saved)

    def train_rows(self) -> list[dict[str, Any]]:
        return [row for row in self.history if row["split"] == "train"]

    @property
    def train_seconds(self) -> float:
        return sum(row["seconds"] for row in self.train_rows())

    @property
    def images_per_second(self) -> float | None:
        images = sum(row["seconds"] * row["images_per_second"] for row in self.train_rows())
        return images / self.train_seconds if self.train_seconds > 0 else None


def restore(
    state: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> Progress:
    """Load a last.pt state into the training objects and the global RNG."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    if state.get("cuda_rng") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return Progress(
        epoch=state["epoch"],
        best_val_accuracy=state["best_val_accuracy"],
        best_epoch=state["best_epoch"],
        history=list(state["history"]),
    )


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    data: Splits,
    run: RunConfig,
    run_dir: Path,
    checkpoint_base: dict[str, Any],
    progress: Progress,
) -> Progress:
    """Train from `progress.epoch + 1` to `run.epochs`; best.pt is chosen on val, never test."""
    reg = run.regularization
    noise = reg.noise_std / data.std  # noise_std is in pixel units; the data are normalised
    metrics = MetricsWriter(run_dir / "metrics.csv", rows=progress.history)

    def record(**row: Any) -> None:
        metrics.write(**row)
        progress.history.append(row)

    try:
        for epoch in range(progress.epoch + 1, run.epochs + 1):
            result = train_epoch(
                model,
                optimizer,
                scheduler,
                data.train_x,
                data.train_y,
                run.batch_size,
                noise,
                reg.label_smoothing,
                description=f"epoch {epoch}/{run.epochs}",
                progress=run.progress,
                amp=run.amp,
                hflip=reg.hflip,
            )
            if run.compile and progress.compile_seconds is None:
                progress.compile_seconds = result.first_batch_seconds
                log.info(
                    "compile=true: the first batch took %.1f s (compiling)",
                    result.first_batch_seconds,
                )
            lr = optimizer.param_groups[0]["lr"]
            record(epoch=epoch, split="train", **result.row(), lr=lr)
            if result.diverged:
                progress.diverged = (
                    f"training loss became {result.loss} in epoch {epoch}: "
                    "lower optimizer.lr or add model.batch_norm=true"
                )
                log.error("diverged: %s", progress.diverged)
                return progress
            val = evaluate(model, data.val_x, data.val_y, run.eval_batch_size, run.amp)
            record(epoch=epoch, split="val", **val.row(), lr=lr)
            log.info(
                "epoch %d/%d: train loss %.4f acc %.2f%% | val loss %.4f acc %.2f%% | "
                "%.1f s, %s img/s",
                epoch,
                run.epochs,
                result.loss,
                100 * result.accuracy,
                val.loss,
                100 * val.accuracy,
                result.seconds,
                f"{result.images_per_second:,.0f}",
            )
            is_best = (
                progress.best_val_accuracy is None or val.accuracy > progress.best_val_accuracy
            )
            if is_best:
                progress.best_val_accuracy, progress.best_epoch = val.accuracy, epoch
            progress.epoch = epoch
            state = {
                **checkpoint_base,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "epoch": epoch,
                "val_accuracy": val.accuracy,
                "best_val_accuracy": progress.best_val_accuracy,
                "best_epoch": progress.best_epoch,
                "history": list(progress.history),
            }
            if is_best:
                save_checkpoint(run_dir / "checkpoints" / "best.pt", state)
            save_checkpoint(run_dir / "checkpoints" / "last.pt", state)
    finally:
        metrics.close()
    return progress


def evaluate_test_split(
    model: nn.Module, data: Splits, run: RunConfig, run_dir: Path, progress: Progress, lr: float
) -> Any:
    """Evaluate the final model on the test split once, at the end, and record the row."""
    test = evaluate(model, data.test_x, data.test_y, run.eval_batch_size, run.amp)
    metrics = MetricsWriter(run_dir / "metrics.csv")  # `fit` left it holding `history`
    row = {"epoch": run.epochs, "split": "test", **test.row(), "lr": lr}
    metrics.write(**row)
    metrics.close()
    progress.history.append(row)
    return test
