"""Set a run up: threads, device, a seeded model (its geometry checked first), data on device."""

from __future__ import annotations

import time

import torch
from torch import nn

from sweeplab.config import RunConfig
from sweeplab.data import Splits, load_splits
from sweeplab.models import build_model
from sweeplab.runtime import pick_device, seed_everything, set_threads

NUM_CLASSES = 10


def memory_format(model: nn.Module, device: torch.device) -> torch.memory_format:
    """Channels-last (NHWC) for CPU convolutions, except with batch norm.

    Measured on a 2-core Xeon, one training step at batch 256: classic LeNet-5 11.9k images/s
    NCHW against 19.8k NHWC; with batch norm 10.8k NCHW against 6.6k NHWC (its NHWC CPU
    kernel is the slow part). The layout changes no value a model holds.
    """
    batch_norm = any(isinstance(module, nn.BatchNorm2d) for module in model.modules())
    if device.type == "cpu" and not batch_norm:
        return torch.channels_last
    return torch.contiguous_format


def prepare(
    run: RunConfig, stats: tuple[float, float] | None = None
) -> tuple[nn.Module, Splits, torch.device]:
    """Model and data for `run`; `stats` reuses a checkpoint's normalisation."""
    set_threads(run.threads)
    device = pick_device(run.device)
    seed_everything(run.seed)
    # Built before the data loads, so a model that cannot take the input size stops at once.
    model = build_model(run.model, 1, run.input_size, NUM_CLASSES)
    model = model.to(device, memory_format=memory_format(model, device))
    started = time.perf_counter()
    data = load_splits(run.dataset, run.input_size, run.resize, stats)
    for name in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y"):
        setattr(data, name, getattr(data, name).to(device))
    data.load_seconds = time.perf_counter() - started
    return model, data, device
