"""Where and how a run executes: device choice, torch threads, seeding."""

from __future__ import annotations

import random

import numpy as np
import torch

from sweeplab.errors import SweeplabError


def pick_device(name: str) -> torch.device:
    """`auto` means CUDA when present, else the CPU; anything else is taken as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise SweeplabError(f"invalid config: device={name!r}: use auto, cpu or cuda[:N]") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SweeplabError(f"device={name!r} but this machine has no CUDA GPU: use device=auto")
    return device


def set_threads(threads: int) -> None:
    """Set torch's intra-op thread count; 0 leaves torch's default."""
    if threads > 0:
        torch.set_num_threads(threads)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU generator for batch order and noise."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
