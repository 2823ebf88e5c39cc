"""One pass over a split: `train_epoch` (shuffled batches, one step each) and `evaluate`."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

PROGRESS_EVERY = 20  # batches between progress-bar updates and divergence checks
ESTIMATE_AFTER = 3  # batches timed (after a warm-up batch) for the epoch-time estimate
LONG_EPOCH_SECONDS = 120.0  # epochs estimated to take longer get a log line saying so

log = logging.getLogger(__name__)


@dataclass
class SplitResult:
    """Loss and accuracy of one pass over a split, and how long it took."""

    loss: float
    accuracy: float
    seconds: float
    images: int

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("nan")

    def row(self) -> dict[str, float]:
        """The metrics.csv fields this result fills."""
        return {
            "loss": self.loss,
            "accuracy": self.accuracy,
            "seconds": self.seconds,
            "images_per_second": self.images_per_second,
        }


@dataclass
class EpochResult(SplitResult):
    diverged: bool = False
    first_batch_seconds: float = float("nan")  # includes compiling when compile=true


def autocast(device: torch.device, amp: bool) -> torch.autocast:
    """bfloat16 mixed precision when `amp` (no loss scaling needed), else a no-op context."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)


@dataclass
class EvalResult(SplitResult):
    predictions: torch.Tensor  # predicted class per image, on the CPU


def steps_per_epoch(train_size: int, batch_size: int) -> int:
    """Full batches per epoch (the remainder is dropped; the shuffle changes it every epoch)."""
    return max(1, train_size // batch_size)


@dataclass(frozen=True)
class TrainSettings:
    """What a training epoch does to each batch, from the run's config."""

    batch_size: int
    noise: float = 0.0  # std of the Gaussian input noise, in the units of `x` (normalised)
    label_smoothing: float = 0.0
    hflip: bool = False  # mirror a random half of each batch
    amp: bool = False  # bfloat16 autocast
    progress: bool = True  # a progress bar on a terminal


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    x: torch.Tensor,
    y: torch.Tensor,
    settings: TrainSettings,
    description: str = "train",
    before_batch: Callable[[], None] | None = None,
) -> EpochResult:
    """One pass over shuffled full batches; flips and noise touch training batches only.

    `before_batch` runs before each batch (a run checks there for a stop signal). Loss and
    accuracy are running averages over the epoch's batches, measured on the noisy inputs in
    training mode (dropout on), as the model changes.
    """
    noise, amp = settings.noise, settings.amp
    model.train()
    started = time.perf_counter()
    batch_size = min(settings.batch_size, len(x))
    steps = steps_per_epoch(len(x), batch_size)
    order = torch.randperm(len(x)).to(x.device)  # the global RNG, seeded per run
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    hidden = None if settings.progress else True  # None: shown on a terminal only
    bar = tqdm(range(steps), desc=description, leave=False, disable=hidden)
    warm = started
    for step in bar:
        if before_batch is not None:
            before_batch()
        if step == 1:
            warm = time.perf_counter()  # the first batch pays one-off set-up costs
        elif step == 1 + ESTIMATE_AFTER:
            _log_long_epoch(description, (time.perf_counter() - warm) / ESTIMATE_AFTER * steps)
        index = order[step * batch_size : (step + 1) * batch_size]
        inputs, targets = x[index], y[index]
        if settings.hflip:  # mirror a random half of the batch, image by image
            flipped = torch.rand(len(inputs), device=inputs.device) < 0.5
            inputs = torch.where(flipped[:, None, None, None], inputs.flip(3), inputs)
        if noise > 0:
            inputs = inputs + noise * torch.randn_like(inputs)
        with autocast(x.device, amp):
            logits = model(inputs)
            loss = F.cross_entropy(logits, targets, label_smoothing=settings.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        loss_sum += loss.detach() * len(index)
        correct += (logits.detach().argmax(1) == targets).sum()
        if step % PROGRESS_EVERY == 0 or step == steps - 1:
            running = loss_sum.item() / ((step + 1) * batch_size)
            if not math.isfinite(running):
                bar.close()
                seconds = time.perf_counter() - started
                return EpochResult(running, float("nan"), seconds, 0, diverged=True)
            bar.set_postfix(loss=f"{running:.4f}", refresh=False)
    images = steps * batch_size
    return EpochResult(
        loss=loss_sum.item() / images,
        accuracy=correct.item() / images,
        seconds=time.perf_counter() - started,
        images=images,
        first_batch_seconds=(warm if steps > 1 else time.perf_counter()) - started,
    )


def _log_long_epoch(description: str, seconds: float) -> None:
    if seconds > LONG_EPOCH_SECONDS:
        hours = seconds / 3600
        log.info(
            "%s: about %s per epoch at this speed (timed over %d batches)",
            description,
            f"{hours:.1f} h" if hours >= 1 else f"{seconds / 60:.0f} min",
            ESTIMATE_AFTER,
        )


def scored_logits(model: nn.Module, x: torch.Tensor, tta: bool = False) -> torch.Tensor:
    """The model's logits for a batch; with `tta` (flip test-time augmentation) the log of the
    mean softmax over each image and its mirror image."""
    if not tta:
        return model(x)
    both = torch.stack([model(x).float().softmax(1), model(x.flip(3)).float().softmax(1)])
    return both.mean(0).log()


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    amp: bool = False,
    tta: bool = False,
) -> EvalResult:
    """Mean cross-entropy, accuracy and predictions over a whole split, in eval mode.

    With `tta` each image is scored with its mirror image too (`scored_logits`).
    """
    model.eval()
    started = time.perf_counter()
    loss_sum = torch.zeros((), device=x.device)
    predictions = []
    for start in range(0, len(x), batch_size):
        with autocast(x.device, amp):
            logits = scored_logits(model, x[start : start + batch_size], tta)
        loss_sum += F.cross_entropy(logits.float(), y[start : start + batch_size], reduction="sum")
        predictions.append(logits.argmax(1))
    predicted = torch.cat(predictions)
    return EvalResult(
        loss=loss_sum.item() / len(x),
        accuracy=(predicted == y).float().mean().item(),
        seconds=time.perf_counter() - started,
        images=len(x),
        predictions=predicted.cpu(),
    )
