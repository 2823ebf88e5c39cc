"""Building blocks shared by the models: activations, weight init, conv geometry."""

from __future__ import annotations

from enum import StrEnum

import torch
from torch import nn

from sweeplab.models.registry import InputSizeError


class Activation(StrEnum):
    relu = "relu"
    leaky_relu = "leaky_relu"  # slope 0.1
    tanh = "tanh"
    scaled_tanh = "scaled_tanh"  # LeCun's 1.7159 * tanh(2x / 3)
    sigmoid = "sigmoid"
    gelu = "gelu"


# Activations that commute with max pooling bit for bit: max(f(a), f(b)) = f(max(a, b)).
# (tanh and sigmoid do too in exact arithmetic, but their vectorised kernels round a value
# differently depending on where it falls in the array.)
COMMUTES_WITH_MAX = frozenset({"relu", "leaky_relu"})


class Init(StrEnum):
    default = "default"  # torch's own
    xavier = "xavier"  # Glorot uniform
    kaiming = "kaiming"  # He normal, with the gain of the activation


class ScaledTanh(nn.Module):
    """LeCun's squashing function, 1.7159 * tanh(2x / 3) (LeCun et al. 1998, appendix A)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.7159 * torch.tanh(x * (2.0 / 3.0))


ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.1),
    "tanh": nn.Tanh,
    "scaled_tanh": ScaledTanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
}
# The gain torch's kaiming init should assume for each activation.
KAIMING_GAIN = {
    "relu": "relu",
    "leaky_relu": "leaky_relu",
    "tanh": "tanh",
    "scaled_tanh": "tanh",
    "sigmoid": "sigmoid",
    "gelu": "relu",
}


def make_activation(name: str) -> nn.Module:
    """A fresh activation module by name."""
    return ACTIVATIONS[name]()


def init_weights(model: nn.Module, init: str, activation: str) -> None:
    """Re-initialise every conv and linear layer: `default` keeps torch's own init."""
    if init == "default":
        return
    for module in model.modules():
        if not isinstance(module, nn.Conv2d | nn.Linear):
            continue
        if init == "xavier":
            nn.init.xavier_uniform_(module.weight)
        elif init == "kaiming":
            gain = KAIMING_GAIN[activation]
            param = 0.1 if gain == "leaky_relu" else None
            nn.init.kaiming_normal_(module.weight, a=param or 0, nonlinearity=gain)
        else:
            raise ValueError(f"unknown init {init!r}")
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def conv_output(size: int, kernel: int, padding: int, layer: str) -> int:
    """Side length after a stride-1 convolution; raise if the kernel does not fit."""
    padded = size + 2 * padding
    if kernel > padded:
        raise InputSizeError(f"{layer} is a {kernel}x{kernel} conv over {padded}x{padded} maps")
    return padded - kernel + 1


def pool_output(size: int, layer: str) -> int:
    """Side length after 2x2 pooling with stride 2; raise if nothing is left."""
    if size < 2:
        raise InputSizeError(f"{layer} pools 2x2 over {size}x{size} maps")
    return size // 2
