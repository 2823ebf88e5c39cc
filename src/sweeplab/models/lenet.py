"""LeNet-5: a modern variant with switches, and the 1998 layout."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from sweeplab.errors import require
from sweeplab.models.layers import (
    COMMUTES_WITH_MAX,
    Activation,
    Init,
    conv_output,
    init_weights,
    make_activation,
    pool_output,
)
from sweeplab.models.registry import ModelConfig, register_model


class Pool(StrEnum):
    max = "max"
    avg = "avg"


class C3(StrEnum):
    full = "full"  # every C3 map sees all 6 S2 maps
    lecun = "lecun"  # LeCun et al. 1998, table I: 60 of the 96 map pairs


@dataclass
class LeNet5Config(ModelConfig):
    name: str = "lenet5"
    kernel_size: int = 5  # 5: the classic layout (C1 padded at 28x28); 3: the 3x3 variant
    extra_pool: bool = False  # one more 2x2 pooling after S4 (the 3x3 course variant has it)
    activation: Activation = Activation.leaky_relu
    batch_norm: bool = False  # between each conv and its activation (1.6x slower on a CPU)
    # Pool right after each conv, then batch norm and the activation: batch norm works on a
    # quarter of the values and the model stays channels-last (steps 1.25x slower than without
    # batch norm, against 1.6x). Without batch norm, with max pooling and (leaky) ReLU, it is
    # the same model either way.
    pool_first: bool = False
    dropout: float = 0.1  # between the fully connected layers
    init: Init = Init.kaiming
    pool: Pool = Pool.max
    channels: list[int] = field(default_factory=lambda: [6, 16])  # C1 and C3 feature maps
    fc: list[int] = field(default_factory=lambda: [120, 84])  # hidden fully connected widths

    def check(self) -> None:
        require(0 <= self.dropout < 1, "model.dropout", self.dropout, "must be in [0, 1)")
        require(self.kernel_size in (3, 5), "model.kernel_size", self.kernel_size, "use 5 or 3")
        require(
            len(self.channels) == 2 and min(self.channels) >= 1,
            "model.channels",
            self.channels,
            "must be two positive counts (C1, C3), e.g. [6,16]",
        )
        require(
            all(width >= 1 for width in self.fc),
            "model.fc",
            self.fc,
            "must be a list of positive widths, e.g. [120,84] (or [] for none)",
        )


@dataclass
class LeNet5ClassicConfig(ModelConfig):
    name: str = "lenet5_classic"
    activation: Activation = Activation.tanh  # scaled_tanh: the paper's 1.7159 tanh(2x/3)
    c3: C3 = C3.full  # lecun: LeCun's table, each C3 map sees 3, 4 or 6 of the 6 S2 maps


# LeCun et al. 1998, table I: the S2 maps (0-5) each C3 map (0-15) is connected to.
LECUN_C3_TABLE = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)  # fmt: skip


class MaskedConv2d(nn.Conv2d):
    """A 6 -> 16 5x5 convolution in which each output map sees only the inputs its row lists.

    Weights outside the table are zero and multiplied by a zero mask in every forward pass,
    so they get no gradient and never change; `inactive_parameters` lets the parameter count
    leave them out.
    """

    def __init__(self, table: tuple[tuple[int, ...], ...], kernel_size: int = 5) -> None:
        in_maps = 1 + max(max(row) for row in table)
        super().__init__(in_maps, len(table), kernel_size)
        mask = torch.zeros(len(table), in_maps, 1, 1)
        for out_map, row in enumerate(table):
            mask[out_map, list(row)] = 1.0
        self.register_buffer("mask", mask, persistent=False)
        with torch.no_grad():
            self.weight.mul_(mask)

    @property
    def inactive_parameters(self) -> int:
        return int((self.mask == 0).sum()) * self.kernel_size[0] * self.kernel_size[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias)


def _pool(kind: str) -> nn.Module:
    return nn.MaxPool2d(2) if kind == "max" else nn.AvgPool2d(2)


@register_model(LeNet5Config)
class LeNet5(nn.Module):
    """conv-pool-conv-pool-fc120-fc84-fc with optional batch norm, dropout and 3x3 kernels.

    `channels` (C1, C3) and `fc` (hidden widths) default to LeNet-5's 6, 16 and 120, 84.

    With 5x5 kernels C1 pads inputs smaller than 32 so that 28x28 images get the maps of the
    32x32 layout (61,706 parameters in the classic form). With 3x3 kernels nothing is padded;
    `extra_pool` adds a third 2x2 pooling after S4, which the 3x3 course variant uses to keep
    the first FC layer small (28x28: 26-13-11-5-2, 19,754 parameters).
    """

    def __init__(
        self,
        in_channels: int = 1,
        input_size: int = 32,
        num_classes: int = 10,
        kernel_size: int = 5,
        activation: str = "leaky_relu",
        batch_norm: bool = False,
        dropout: float = 0.1,
        init: str = "kaiming",
        pool: str = "max",
        extra_pool: bool = False,
        pool_first: bool = False,
        channels: tuple[int, int] | list[int] = (6, 16),
        fc: tuple[int, ...] | list[int] = (120, 84),
    ) -> None:
        super().__init__()
        if kernel_size not in (3, 5):
            raise ValueError(f"kernel_size must be 3 or 5, got {kernel_size}")
        c1_padding = max(0, (32 - input_size) // 2) if kernel_size == 5 else 0
        size = conv_output(input_size, kernel_size, c1_padding, "C1")
        size = pool_output(size, "S2")
        size = conv_output(size, kernel_size, 0, "C3")
        size = pool_output(size, "S4")
        if extra_pool:
            size = pool_output(size, "the extra pooling")

        def conv_block(c_in: int, c_out: int, padding: int) -> list[nn.Module]:
            # Batch norm has its own shift, so the conv bias would be redundant.
            conv = nn.Conv2d(c_in, c_out, kernel_size, padding=padding, bias=not batch_norm)
            norm = [nn.BatchNorm2d(c_out)] if batch_norm else []
            act, pooling = make_activation(activation), _pool(pool)
            if pool_first:
                return [conv, pooling, *norm, act]
            if pool == Pool.max and activation in COMMUTES_WITH_MAX:
                # Pool first: the same outputs and gradients with the activation on a quarter
                # of the values (LeNet-5 trains 1.3x faster). No parameters move in the state
                # dict, so checkpoints load either way.
                return [conv, *norm, pooling, act]
            return [conv, *norm, act, pooling]

        c1, c3 = channels
        self.features = nn.Sequential(
            *conv_block(in_channels, c1, c1_padding),
            *conv_block(c1, c3, 0),
            *([_pool(pool)] if extra_pool else []),
        )
        hidden: list[nn.Module] = []
        for width_in, width_out in pairwise([c3 * size * size, *fc]):
            hidden += [nn.Linear(width_in, width_out), make_activation(activation)]
            hidden += [nn.Dropout(dropout)]
        self.classifier = nn.Sequential(
            nn.Flatten(), *hidden, nn.Linear([c3 * size * size, *fc][-1], num_classes)
        )
        init_weights(self, init, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register_model(
    LeNet5ClassicConfig,
    native_size=32,
    size_hint="input_size=32 (or model=lenet5, which takes 28x28)",
)
class LeNet5Classic(nn.Module):
    """LeCun et al. 1998: C1-S2-C3-S4-C5-F6-output with average pooling, for 32x32 input.

    C5 is a 5x5 convolution over the 5x5 S4 maps, so 28x28 input (4x4 maps) cannot work.
    Sub-sampling is plain average pooling (the paper's S layers also had a trainable
    coefficient and bias per map), which gives the usual 61,706 parameters with a full C3 and
    60,806 with LeCun's connection table (`c3="lecun"`). `activation="scaled_tanh"` is the
    paper's 1.7159 tanh(2x/3).
    """

    def __init__(
        self,
        in_channels: int = 1,
        input_size: int = 32,
        num_classes: int = 10,
        activation: str = "tanh",
        c3: str = "full",
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
            MaskedConv2d(LECUN_C3_TABLE) if c3 == "lecun" else nn.Conv2d(6, 16, 5),  # C3
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
