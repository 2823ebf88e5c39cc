"""The model registry: each model module registers its class, config schema and native size.

    @register_model(LeNet5ClassicConfig, native_size=32)
    class LeNet5Classic(nn.Module): ...

The registry is all the rest of sweeplab knows of a model: the ConfigStore schema that
`conf/model/<name>.yaml` extends, the input size a run uses when none is given, the hint for
a size the model cannot take, and the class `build_model` calls.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import Enum
from typing import TypeVar

import torch
from omegaconf import MISSING
from torch import nn

from sweeplab.errors import SweeplabError

log = logging.getLogger(__name__)

SOFTMAX_WARNING = (
    "model.softmax_in_forward=true: forward() ends in a softmax and the cross-entropy applies "
    "another, which flattens the gradients (an ablation of a common bug, not a fix)"
)


class InputSizeError(ValueError):
    """A model's geometry cannot take the given input size."""


@dataclass
class ModelConfig:
    """Fields every model schema has; a schema adds its constructor's keyword arguments."""

    name: str = MISSING
    # The course-work bug as an ablation: a softmax at the end of forward(), before the
    # cross-entropy (which applies its own). Off by default; a warning is logged when on.
    softmax_in_forward: bool = False

    def check(self) -> None:
        """Raise SweeplabError naming the first out-of-range field (types are Hydra's job)."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable[..., nn.Module]  # called with in_channels, input_size, num_classes, fields
    schema: type[ModelConfig]
    native_size: int | None  # the input size it is built for; None: any (the dataset's own)
    size_hint: str | None  # what to tell a user whose input size it cannot take


MODELS: dict[str, ModelSpec] = {}
Builder = TypeVar("Builder", bound=Callable[..., nn.Module])


def register_model(
    schema: type[ModelConfig], native_size: int | None = None, size_hint: str | None = None
) -> Callable[[Builder], Builder]:
    """Class decorator: register a model under its schema's default `name`."""

    def register(builder: Builder) -> Builder:
        name = schema.name  # the dataclass default, e.g. "lenet5"
        if name in MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        MODELS[name] = ModelSpec(name, builder, schema, native_size, size_hint)
        return builder

    return register


def model_spec(name: str) -> ModelSpec:
    """The registered model `name`; raise one line listing the valid names."""
    if name not in MODELS:
        raise SweeplabError(f"unknown model {name!r}: use one of {sorted(MODELS)}")
    return MODELS[name]


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
    spec = model_spec(cfg.name)
    try:
        model = spec.builder(
            in_channels=in_channels,
            input_size=input_size,
            num_classes=num_classes,
            **model_kwargs(cfg),
        )
    except InputSizeError as err:
        hint = spec.size_hint or (
            f"input_size={spec.native_size}"
            if spec.native_size
            else ("input_size=32" if input_size < 32 else "a smaller one")
        )
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
