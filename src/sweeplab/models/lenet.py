"""LeNet-5: a modern variant with switches, and the 1998 layout."""

from __future__ import annotations

import torch
from torch import nn

from sweeplab.models.layers import (
    conv_output,
    init_weights,
    make_activation,
    pool_output,
)


def _pool(kind: str) -> nn.Module:
    return nn.MaxPool2d(2) if kind == "max" else nn.AvgPool2d(2)


class LeNet5(nn.Module):
    """conv-pool-conv-pool-fc120-fc84-fc with optional batch norm, dropout and 3x3 kernels.

    With 5x5 kernels C1 pads inputs smaller than 32 so that 28x28 images get the maps of the
    32x32 layout; with 3x3 kernels no padding is needed and the first FC layer grows to fit.
    """

    def __init__(
        self,
        in_channels: int = 1,
        input_size: int = 32,
        num_classes: int = 10,
        kernel_size: int = 5,
        activation: str = "relu",
        batch_norm: bool = False,
        dropout: float = 0.0,
        init: str = "default",
        pool: str = "max",
    ) -> None:
        super().__init__()
        if kernel_size not in (3, 5):
            raise ValueError(f"kernel_size must be 3 or 5, got {kernel_size}")
        c1_padding = max(0, (32 - input_size) // 2) if kernel_size == 5 else 0
        size = conv_output(input_size, kernel_size, c1_padding, "C1")
        size = pool_output(size, "S2")
        size = conv_output(size, kernel_size, 0, "C3")
        size = pool_output(size, "S4")

        def conv_block(c_in: int, c_out: int, padding: int) -> list[nn.Module]:
            # Batch norm has its own shift, so the conv bias would be redundant.
            conv = nn.Conv2d(c_in, c_out, kernel_size, padding=padding, bias=not batch_norm)
            norm = [nn.BatchNorm2d(c_out)] if batch_norm else []
            return [conv, *norm, make_activation(activation), _pool(pool)]

        self.features = nn.Sequential(
            *conv_block(in_channels, 6, c1_padding), *conv_block(6, 16, 0)
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * size * size, 120),
            make_activation(activation),
            nn.Dropout(dropout),
            nn.Linear(120, 84),
            make_activation(activation),
            nn.Dropout(dropout),
            nn.Linear(84, num_classes),
        )
        init_weights(self, init, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class LeNet5Classic(nn.Module):
    """LeCun et al. 1998: C1-S2-C3-S4-C5-F6-output with average pooling, for 32x32 input.

    C5 is a 5x5 convolution over the 5x5 S4 maps, so 28x28 input (4x4 maps) cannot work.
    Sub-sampling is plain average pooling (the paper's S layers also had a trainable
    coefficient and bias per map), which gives the usual 61,706 parameters.
    """

    def __init__(
        self,
        in_channels: int = 1,
        input_size: int = 32,
        num_classes: int = 10,
        activation: str = "tanh",
    ) -> None:
        super().__init__()
        size = conv_output(input_size, 5, 0, "C1")
        size = pool_output(size, "S2")
        size = conv_output(size, 5, 0, "C3")
        size = pool_output(size, "S4")
        size = conv_output(size, 5, 0, "C5")
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5),  # C1
            make_activation(activation),
            nn.AvgPool2d(2),  # S2
            nn.Conv2d(6, 16, 5),  # C3
            make_activation(activation),
            nn.AvgPool2d(2),  # S4
            nn.Conv2d(16, 120, 5),  # C5
            make_activation(activation),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(120 * size * size, 84),  # F6
            make_activation(activation),
            nn.Linear(84, num_classes),  # output; the loss applies the softmax
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
