"""Set a run up: threads, device, a seeded model (its geometry checked first), data on device."""

from __future__ import annotations

import torch
from torch import nn

from sweeplab.config import RunConfig
from sweeplab.data import Splits, load_splits
from sweeplab.models import build_model
from sweeplab.runtime import pick_device, seed_everything, set_threads

NUM_CLASSES = 10


def prepare(
    run: RunConfig, stats: tuple[float, float] | None = None
) -> tuple[nn.Module, Splits, torch.device]:
    """Model and data for `run`; `stats` reuses a checkpoint's normalisation."""
    set_threads(run.threads)
    device = pick_device(run.device)
    seed_everything(run.seed)
    # Built before the data loads, so a model that cannot take the input size stops at once.
    model = build_model(run.model, 1, run.input_size, NUM_CLASSES).to(device)
    data = load_splits(run.dataset, run.input_size, run.resize, stats)
    for name in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y"):
        setattr(data, name, getattr(data, name).to(device))
    return model, data, device
