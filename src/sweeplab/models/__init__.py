"""The model registry: every model is built by its config name through `build_model`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from enum import Enum

from torch import nn

from sweeplab.config import ModelConfig
from sweeplab.errors import SweeplabError
from sweeplab.models.layers import InputSizeError
from sweeplab.models.lenet import LeNet5, LeNet5Classic
from sweeplab.models.mlp import MLP

MODELS: dict[str, Callable[..., nn.Module]] = {
    "lenet5": LeNet5,
    "lenet5_classic": LeNet5Classic,
    "mlp": MLP,
}


def model_kwargs(cfg: ModelConfig) -> dict:
    """The model's constructor arguments: its config fields as plain values, without `name`."""
    kwargs = {
        key: value.value if isinstance(value, Enum) else value for key, value in asdict(cfg).items()
    }
    kwargs.pop("name")
    return kwargs


def build_model(
    cfg: ModelConfig, in_channels: int = 1, input_size: int = 28, num_classes: int = 10
) -> nn.Module:
    """Build the model named by `cfg.name`; raise one clear line if it cannot take the input."""
    if cfg.name not in MODELS:
        raise SweeplabError(f"unknown model {cfg.name!r}: use one of {sorted(MODELS)}")
    try:
        return MODELS[cfg.name](
            in_channels=in_channels,
            input_size=input_size,
            num_classes=num_classes,
            **model_kwargs(cfg),
        )
    except InputSizeError as err:
        hint = "input_size=32" if input_size < 32 else "a smaller input_size"
        raise SweeplabError(
            f"model {cfg.name} cannot take input_size={input_size}: {err}; use {hint}"
            + (" (or model=lenet5, which takes 28x28)" if cfg.name == "lenet5_classic" else "")
        ) from err


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
