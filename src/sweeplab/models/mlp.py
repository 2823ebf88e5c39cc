"""A multilayer perceptron on flattened images, and equal widths that match a parameter count."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

import torch
from torch import nn

from sweeplab.errors import SweeplabError, require
from sweeplab.models.layers import Activation, Init, init_weights, make_activation
from sweeplab.models.registry import ModelConfig, register_model

MATCH_TOLERANCE = 0.01  # `match_params` must land within 1 % of its target


def mlp_parameters(inputs: int, hidden: list[int] | tuple[int, ...], outputs: int) -> int:
    """Weights and biases of Linear layers inputs -> hidden... -> outputs."""
    widths = [inputs, *hidden, outputs]
    return sum(a * b + b for a, b in pairwise(widths))


def match_widths(target: int, depth: int, inputs: int, outputs: int = 10) -> list[int]:
    """`depth` equal hidden widths whose parameter count is closest to `target` (within 1 %)."""
    low, high = 1, max(1, target)  # the count grows with the width: bisect for the crossing
    while low < high:
        mid = (low + high) // 2
        if mlp_parameters(inputs, [mid] * depth, outputs) < target:
            low = mid + 1
        else:
            high = mid
    best = min(
        (w for w in (low - 1, low) if w >= 1),
        key=lambda w: abs(mlp_parameters(inputs, [w] * depth, outputs) - target),
    )
    got = mlp_parameters(inputs, [best] * depth, outputs)
    if abs(got - target) > MATCH_TOLERANCE * target:
        raise SweeplabError(
            f"model.match_params={target}: {depth} equal hidden layer(s) on {inputs} inputs get "
            f"no closer than {got:,} parameters (width {best}), more than 1 % off; "
            "change model.depth or the target"
        )
    return [best] * depth


@dataclass
class MLPConfig(ModelConfig):
    name: str = "mlp"
    hidden: list[int] = field(default_factory=lambda: [72, 36])
    activation: Activation = Activation.relu
    dropout: float = 0.0
    init: Init = Init.default
    # A parameter count to match with `depth` equal hidden widths (replaces `hidden`).
    match_params: int | None = None
    depth: int = 2

    def check(self) -> None:
        require(0 <= self.dropout < 1, "model.dropout", self.dropout, "must be in [0, 1)")
        require(
            bool(self.hidden) and min(self.hidden) >= 1,
            "model.hidden",
            self.hidden,
            "must be a non-empty list of positive widths, e.g. [72,36]",
        )
        require(self.depth >= 1, "model.depth", self.depth, "must be at least 1")
        if self.match_params is not None:
            require(
                self.match_params >= 1,
                "model.match_params",
                self.match_params,
                "must be a positive parameter count or null",
            )


@register_model(MLPConfig)
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
        match_params: int | None = None,
        depth: int = 2,
    ) -> None:
        super().__init__()
        inputs = in_channels * input_size * input_size
        if match_params is not None:
            hidden = match_widths(match_params, depth, inputs, num_classes)
        if not hidden or min(hidden) < 1:
            raise ValueError(f"hidden widths must be a non-empty list of positive ints: {hidden}")
        self.hidden = list(hidden)
        widths = [inputs, *hidden]
        layers: list[nn.Module] = [nn.Flatten()]
        for width_in, width_out in pairwise(widths):
            layers += [nn.Linear(width_in, width_out), make_activation(activation)]
            layers += [nn.Dropout(dropout)] if dropout > 0 else []
        layers.append(nn.Linear(widths[-1], num_classes))
        self.layers = nn.Sequential(*layers)
        init_weights(self, init, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
