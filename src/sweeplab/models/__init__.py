"""The model registry: every model is built by its config name through `build_model`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict
from enum import Enum

import torch
from torch import nn

from sweeplab.config import ModelConfig
from sweeplab.errors import SweeplabError
from sweeplab.models.alexnet import AlexNet, AlexNetSmall
from sweeplab.models.layers import InputSizeError
from sweeplab.models.lenet import LeNet5, LeNet5Classic
from sweeplab.models.mlp import MLP

MODELS: dict[str, Callable[..., nn.Module]] = {
    "lenet5": LeNet5,
    "lenet5_classic": LeNet5Classic,
    "mlp": MLP,
    "alexnet": AlexNet,
    "alexnet_small": AlexNetSmall,
}
SIZE_HINTS = {
    "lenet5_classic": "input_size=32 (or model=lenet5, which takes 28x28)",
    "lenet5_classic_lecun": "input_size=32",
    "alexnet": "input_size=227 resize=resize (or model=alexnet_small for 28x28 / 32x32)",
}
SOFTMAX_WARNING = (
    "model.softmax_in_forward=true: forward() ends in a softmax and the cross-entropy applies "
    "another, which flattens the gradients (an ablation of a common bug, not a fix)"
)

log = logging.getLogger(__name__)


def model_kwargs(cfg: ModelConfig) -> dict:
    """The model's constructor arguments: its config fields as plain values, without `name`."""
    kwargs = {
        key: value.value if isinstance(value, Enum) else value for key, value in asdict(cfg).items()
    }
    kwargs.pop("name")
    kwargs.pop("softmax_in_forward")
    return kwargs


def build_model(
    cfg: ModelConfig, in_channels: int = 1, input_size: int = 28, num_classes: int = 10
) -> nn.Module:
    """Build the model named by `cfg.name`; raise one clear line if it cannot take the input."""
    if cfg.name not in MODELS:
        raise SweeplabError(f"unknown model {cfg.name!r}: use one of {sorted(MODELS)}")
    try:
        model = MODELS[cfg.name](
            in_channels=in_channels,
            input_size=input_size,
            num_classes=num_classes,
            **model_kwargs(cfg),
        )
    except InputSizeError as err:
        hint = SIZE_HINTS.get(cfg.name, "input_size=32" if input_size < 32 else "a smaller one")
        raise SweeplabError(
            f"model {cfg.name} cannot take input_size={input_size}: {err}; use {hint}"
        ) from err
    if cfg.softmax_in_forward:
        log.warning(SOFTMAX_WARNING)
        return SoftmaxOutput(model)
    return model


class SoftmaxOutput(nn.Module):
    """Wraps a model so that forward() returns probabilities: the softmax_in_forward bug."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).softmax(dim=1)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters, without weights a connection mask keeps at zero."""
    total = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total - sum(getattr(module, "inactive_parameters", 0) for module in model.modules())
