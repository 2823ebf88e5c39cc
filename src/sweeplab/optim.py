"""The optimizer and the per-batch learning-rate schedule of a run, from their configs."""

from __future__ import annotations

import math

import torch
from torch import nn

from sweeplab.config import OptimizerConfig, OptimizerName, SchedulerConfig, SchedulerName


def build_optimizer(
    model: nn.Module, cfg: OptimizerConfig, weight_decay: float
) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov), Adam (L2 weight decay) or AdamW (decoupled weight decay)."""
    params = model.parameters()
    if cfg.name == OptimizerName.sgd:
        return torch.optim.SGD(
            params,
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov and cfg.momentum > 0,
            weight_decay=weight_decay,
        )
    optimizer_class = torch.optim.AdamW if cfg.name == OptimizerName.adamw else torch.optim.Adam
    return optimizer_class(
        params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=weight_decay
    )


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: SchedulerConfig, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """A per-batch lr schedule: constant, one-cycle, or cosine decay after a linear warmup."""
    if cfg.name == SchedulerName.onecycle:
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
        if cfg.name == SchedulerName.none:
            return 1.0
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
