"""Every registered model: shapes, gradients, exact parameter counts, clear geometry errors."""

from __future__ import annotations

import pytest
import torch

from sweeplab.config import MODEL_SCHEMAS, LeNet5ClassicConfig, LeNet5Config, MLPConfig
from sweeplab.errors import SweeplabError
from sweeplab.models import MODELS, build_model, count_parameters

SIZES = (28, 32)
# Models whose geometry cannot take an input size, by design.
CANNOT_TAKE = {("lenet5_classic", 28)}


def test_every_model_has_a_schema_and_the_other_way_round() -> None:
    assert set(MODELS) == set(MODEL_SCHEMAS)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_forward_backward_every_parameter_gets_a_gradient(name: str, size: int) -> None:
    if (name, size) in CANNOT_TAKE:
        pytest.skip("refused by design; see test_lenet5_classic_refuses_28x28_in_one_line")
    torch.manual_seed(0)
    model = build_model(MODEL_SCHEMAS[name](), 1, size, 10)
    x = torch.randn(4, 1, size, size)
    logits = model(x)
    assert logits.shape == (4, 10)
    assert torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3])).backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None, param_name
        assert torch.isfinite(param.grad).all(), param_name
        assert param.grad.abs().sum() > 0, param_name


@pytest.mark.parametrize(
    ("cfg", "size", "expected"),
    [
        # C1 156 + C3 2,416 + C5 48,120 + F6 10,164 + output 850
        (LeNet5ClassicConfig(), 32, 61_706),
        # Same layers as the classic with C5 as a 400->120 linear layer; C1 padded at 28x28.
        (LeNet5Config(), 28, 61_706),
        (LeNet5Config(), 32, 61_706),
        # Batch norm drops the conv biases (6 + 16) and adds 2 x (6 + 16) affine parameters.
        (LeNet5Config(batch_norm=True), 28, 61_728),
        # 3x3 kernels: C1 60 + C3 880, then 16x5x5 maps at 28x28 (16x6x6 at 32x32).
        (LeNet5Config(kernel_size=3), 28, 60_074),
        (LeNet5Config(kernel_size=3), 32, 81_194),
        # 784*72+72 + 72*36+36 + 36*10+10
        (MLPConfig(hidden=[72, 36]), 28, 59_518),
        (MLPConfig(hidden=[58]), 32, 60_040),
    ],
)
def test_exact_parameter_counts(cfg, size: int, expected: int) -> None:
    assert count_parameters(build_model(cfg, 1, size, 10)) == expected


def test_lenet5_classic_refuses_28x28_in_one_line() -> None:
    with pytest.raises(SweeplabError) as info:
        build_model(LeNet5ClassicConfig(), 1, 28, 10)
    message = str(info.value)
    assert "lenet5_classic" in message and "input_size=28" in message
    assert "input_size=32" in message and "\n" not in message


def test_no_softmax_in_forward() -> None:
    # Logits of an untrained model do not sum to one; a softmax output would.
    torch.manual_seed(0)
    for name in sorted(MODELS):
        size = 32 if (name, 28) in CANNOT_TAKE else 28
        logits = build_model(MODEL_SCHEMAS[name](), 1, size, 10)(torch.randn(8, 1, size, size))
        assert not torch.allclose(logits.sum(1), torch.ones(8), atol=1e-3), name


@pytest.mark.parametrize("init", ["default", "xavier", "kaiming"])
@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh", "scaled_tanh", "gelu"])
def test_lenet5_switches_build_and_run(init: str, activation: str) -> None:
    cfg = LeNet5Config(activation=activation, init=init, batch_norm=True, dropout=0.5, pool="avg")
    assert build_model(cfg, 1, 28, 10)(torch.randn(2, 1, 28, 28)).shape == (2, 10)
