"""The one training loop and the one `evaluate`, with optimizer and lr schedule builders."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from sweeplab.config import OptimizerConfig, SchedulerConfig

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


def build_optimizer(
    model: nn.Module, cfg: OptimizerConfig, weight_decay: float
) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov), Adam (L2 weight decay) or AdamW (decoupled weight decay)."""
    params = model.parameters()
    if cfg.name == "sgd":
        return torch.optim.SGD(
            params,
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov and cfg.momentum > 0,
            weight_decay=weight_decay,
        )
    optimizer_class = torch.optim.AdamW if cfg.name == "adamw" else torch.optim.Adam
    return optimizer_class(
        params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=weight_decay
    )


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: SchedulerConfig, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """A per-batch lr schedule: constant, one-cycle, or cosine decay after a linear warmup."""
    if cfg.name == "onecycle":
        # OneCycleLR divides by its phase lengths: keep over one step in each (tiny runs).
        pct_start = min(max(cfg.warmup, 1.5 / total_steps), 1 - 0.5 / total_steps)
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=[group["lr"] for group in optimizer.param_groups],
            total_steps=total_steps,
            pct_start=pct_start,
            cycle_momentum=False,  # keep the optimizer's own momentum / betas
        )
    warmup_steps = int(cfg.warmup * total_steps)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if cfg.name == "none":
            return 1.0
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def steps_per_epoch(train_size: int, batch_size: int) -> int:
    """Full batches per epoch (the remainder is dropped; the shuffle changes it every epoch)."""
    return max(1, train_size // batch_size)


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    noise_std: float = 0.0,
    label_smoothing: float = 0.0,
    description: str = "train",
    progress: bool = True,
    amp: bool = False,
    hflip: bool = False,
) -> EpochResult:
    """One pass over shuffled full batches; flips and noise touch training batches only.

    Loss and accuracy are running averages over the epoch's batches, measured on the noisy
    inputs in training mode (dropout on), as the model changes.
    """
    model.train()
    started = time.perf_counter()
    batch_size = min(batch_size, len(x))
    steps = steps_per_epoch(len(x), batch_size)
    order = torch.randperm(len(x)).to(x.device)  # the global RNG, seeded per run
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    bar = tqdm(range(steps), desc=description, leave=False, disable=None if progress else True)
    warm = started
    for step in bar:
        if step == 1:
            warm = time.perf_counter()  # the first batch pays one-off set-up costs
        elif step == 1 + ESTIMATE_AFTER:
            _log_long_epoch(description, (time.perf_counter() - warm) / ESTIMATE_AFTER * steps)
        index = order[step * batch_size : (step + 1) * batch_size]
        inputs, targets = x[index], y[index]
        if hflip:  # mirror a random half of the batch, image by image
            flipped = torch.rand(len(inputs), device=inputs.device) < 0.5
            inputs = torch.where(flipped[:, None, None, None], inputs.flip(3), inputs)
        if noise_std > 0:
            inputs = inputs + noise_std * torch.randn_like(inputs)
        with autocast(x.device, amp):
            logits = model(inputs)
            loss = F.cross_entropy(logits, targets, label_smoothing=label_smoothing)
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


@torch.inference_mode()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, amp: bool = False
) -> EvalResult:
    """Mean cross-entropy, accuracy and predictions over a whole split, in eval mode."""
    model.eval()
    started = time.perf_counter()
    loss_sum = torch.zeros((), device=x.device)
    predictions = []
    for start in range(0, len(x), batch_size):
        with autocast(x.device, amp):
            logits = model(x[start : start + batch_size])
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
