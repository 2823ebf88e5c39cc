"""AlexNet (Krizhevsky et al. 2012) for 227x227 input, and a small one for 28x28 / 32x32."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sweeplab.errors import require
from sweeplab.models.registry import InputSizeError, ModelConfig, register_model


@dataclass
class AlexNetConfig(ModelConfig):
    """Krizhevsky et al. 2012 (`alexnet`), for any channel count and 227x227 input."""

    name: str = "alexnet"
    batch_norm: bool = True  # after each conv, in place of the 2012 paper's LRN (as in Keras)
    dropout: float = 0.5  # before the two hidden fully connected layers

    def check(self) -> None:
        require(0 <= self.dropout < 1, "model.dropout", self.dropout, "must be in [0, 1)")


@dataclass
class AlexNetSmallConfig(AlexNetConfig):
    name: str = "alexnet_small"
    width: float = 0.5  # multiplies every channel count and hidden width (1.0: 429,034 params)

    def check(self) -> None:
        super().check()
        require(0 < self.width <= 8, "model.width", self.width, "must be in (0, 8]")


def _conv(
    c_in: int, c_out: int, kernel: int, batch_norm: bool, stride: int = 1, padding: int = 0
) -> list[nn.Module]:
    conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=not batch_norm)
    return [conv, *([nn.BatchNorm2d(c_out)] if batch_norm else []), nn.ReLU(inplace=True)]


def _classifier(features: int, hidden: int, num_classes: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(features, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(hidden, hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, num_classes),
    )


def _feature_count(features: nn.Module, in_channels: int, input_size: int) -> int:
    """Values per image after `features`, found by running one blank image through it."""
    try:
        with torch.no_grad():
            return features.eval()(torch.zeros(1, in_channels, input_size, input_size)).numel()
    except RuntimeError as err:
        raise InputSizeError(f"{input_size}x{input_size} is too small for its layers") from err
    finally:
        features.train()


@register_model(
    AlexNetConfig,
    native_size=227,
    size_hint="input_size=227 (or model=alexnet_small for 28x28 / 32x32)",
)
class AlexNet(nn.Module):
    """The 2012 layout: five convs (96-256-384-384-256; 11x11 stride 4, 5x5, 3x3 x3), three
    3x3 stride-2 max pools, FC 4096-4096 with dropout; `in_channels` inputs, `num_classes` outputs.

    Batch norm after each conv stands in for the paper's local response normalisation (as
    the Keras course notebook does). At 227x227: 58.3M parameters; an epoch of 55k images
    takes hours on a 2-core CPU (the run logs its estimate after the first batches).
    """

    def __init__(
        self,
        in_channels: int = 1,
        input_size: int = 227,
        num_classes: int = 10,
        batch_norm: bool = True,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *_conv(in_channels, 96, 11, batch_norm, stride=4),
            nn.MaxPool2d(3, 2),
            *_conv(96, 256, 5, batch_norm, padding=2),
            nn.MaxPool2d(3, 2),
            *_conv(256, 384, 3, batch_norm, padding=1),
            *_conv(384, 384, 3, batch_norm, padding=1),
            *_conv(384, 256, 3, batch_norm, padding=1),
            nn.MaxPool2d(3, 2),
        )
        features = _feature_count(self.features, in_channels, input_size)
        self.classifier = _classifier(features, 4096, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register_model(AlexNetSmallConfig)
class AlexNetSmall(nn.Module):
    """AlexNet's shape for 28x28 / 32x32 images: five 3x3 convs (32-64-96-96-64 times
    `width`), 2x2 max pools after the 1st, 2nd and 5th, FC 256-256 with dropout.
    """

    def __init__(
        self,
        in_channels: int = 1,
        input_size: int = 28,
        num_classes: int = 10,
        batch_norm: bool = True,
        dropout: float = 0.5,
        width: float = 0.5,
    ) -> None:
        super().__init__()
        c1, c2, c3, c4, c5, hidden = (max(1, round(c * width)) for c in (32, 64, 96, 96, 64, 256))
        self.features = nn.Sequential(
            *_conv(in_channels, c1, 3, batch_norm, padding=1),
            nn.MaxPool2d(2),
            *_conv(c1, c2, 3, batch_norm, padding=1),
            nn.MaxPool2d(2),
            *_conv(c2, c3, 3, batch_norm, padding=1),
            *_conv(c3, c4, 3, batch_norm, padding=1),
            *_conv(c4, c5, 3, batch_norm, padding=1),
            nn.MaxPool2d(2),
        )
        features = _feature_count(self.features, in_channels, input_size)
        self.classifier = _classifier(features, hidden, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
