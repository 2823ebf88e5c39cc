"""A multilayer perceptron on flattened images."""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

from sweeplab.models.layers import init_weights, make_activation


class MLP(nn.Module):
    """Flatten, then Linear-activation-dropout per hidden width, then a linear output."""

    def __init__(
        self,
        in_channels: int = 1,
        input_size: int = 28,
        num_classes: int = 10,
        hidden: tuple[int, ...] | list[int] = (72, 36),
        activation: str = "relu",
        dropout: float = 0.0,
        init: str = "default",
    ) -> None:
        super().__init__()
        if not hidden or min(hidden) < 1:
            raise ValueError(f"hidden widths must be a non-empty list of positive ints: {hidden}")
        widths = [in_channels * input_size * input_size, *hidden]
        layers: list[nn.Module] = [nn.Flatten()]
        for width_in, width_out in pairwise(widths):
            layers += [nn.Linear(width_in, width_out), make_activation(activation)]
            layers += [nn.Dropout(dropout)] if dropout > 0 else []
        layers.append(nn.Linear(widths[-1], num_classes))
        self.layers = nn.Sequential(*layers)
        init_weights(self, init, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
