"""Every registered model: shapes, gradients, exact parameter counts, clear geometry errors."""

from __future__ import annotations

import logging
import re

import pytest
import torch

from sweeplab.config import check_config
from sweeplab.errors import SweeplabError
from sweeplab.models import MODELS, SOFTMAX_WARNING, build_model, count_parameters
from sweeplab.models.alexnet import AlexNetConfig, AlexNetSmallConfig
from sweeplab.models.lenet import LECUN_C3_TABLE, LeNet5ClassicConfig, LeNet5Config, MaskedConv2d
from sweeplab.models.mlp import MLPConfig, match_widths, mlp_parameters
from sweeplab.modes import summarise_model
from tests.conftest import CONF, ROOT

MODELS_PAGE = ROOT / "docs" / "models.md"


def sizes(name: str) -> tuple[int, ...]:
    """The input sizes a model is tested at: its native one, else 28 and 32."""
    native = MODELS[name].native_size
    return (native,) if native else (28, 32)


# LeCun et al. 1998 and the parameter-matched MLP study: preset -> (input size, parameters).
PRESET_COUNTS = {
    "lenet5": (28, 61_706),
    "lenet5_classic": (32, 61_706),
    "lenet5_classic_lecun": (32, 60_806),
    "lenet5_3x3": (28, 19_754),
    "lenet5_bn": (28, 61_728),
    "mlp": (28, 59_518),
    "custom_mlp_1": (32, 60_804),
    "custom_mlp_2": (32, 60_819),
    "custom_mlp_3": (32, 60_808),
    "custom_mlp_4": (32, 60_813),
    "custom_mlp_5": (32, 60_827),
    "custom_mlp_6": (32, 60_040),
    "alexnet": (227, 58_300_458),
    "alexnet_small": (28, 108_282),
}


def test_every_registered_model_has_its_yaml_and_every_model_yaml_a_registered_schema(
    make_cfg,
) -> None:
    assert {path.stem for path in (CONF / "model").glob("*.yaml")} >= set(MODELS)
    for path in (CONF / "model").glob("*.yaml"):
        assert make_cfg(f"model={path.stem}").model.name in MODELS, path.name


@pytest.mark.parametrize(
    ("name", "size", "channels", "classes"),
    [
        (name, size, channels, classes)
        for name in sorted(MODELS)
        for size in sizes(name)
        for channels, classes in ((1, 10), (3, 47))
    ],
)
def test_forward_backward_every_parameter_gets_a_gradient(
    name: str, size: int, channels: int, classes: int
) -> None:
    torch.manual_seed(0)
    model = build_model(MODELS[name].schema(), channels, size, classes)
    x = torch.randn(4, channels, size, size)
    logits = model(x)
    assert logits.shape == (4, classes)
    assert torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3])).backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None, param_name
        assert torch.isfinite(param.grad).all(), param_name
        assert param.grad.abs().sum() > 0, param_name


@pytest.mark.parametrize(
    ("preset", "size", "expected"), [(name, *count) for name, count in PRESET_COUNTS.items()]
)
def test_every_model_preset_has_its_published_parameter_count(
    make_cfg, preset: str, size: int, expected: int
) -> None:
    run = check_config(make_cfg(f"model={preset}", f"input_size={size}"))
    assert count_parameters(build_model(run.model, 1, size, 10)) == expected


@pytest.mark.parametrize(
    ("preset", "size", "expected"), [(name, *count) for name, count in PRESET_COUNTS.items()]
)
def test_a_preset_needs_no_input_size_to_be_the_published_model(
    make_cfg, tmp_path, preset: str, size: int, expected: int
) -> None:
    summary = summarise_model(make_cfg(f"model={preset}"), tmp_path)  # what mode=summary prints
    assert (summary["input_size"], summary["params"]) == (size, expected)


def manual_model_table() -> dict[str, tuple[int, int]]:
    """The manual's model table: preset -> (the size it runs at on FashionMNIST, parameters)."""
    table: dict[str, tuple[int, int]] = {}
    for line in MODELS_PAGE.read_text().splitlines():
        if not line.startswith("| `"):
            continue
        names, native, params = (cell.strip() for cell in line.split("|")[1:4])
        found = re.findall(r"`(\w+)`", names)
        if "..." in names:  # `custom_mlp_1` ... `custom_mlp_6`
            first, last = (int(name.rsplit("_", 1)[1]) for name in found)
            stem = found[0].rsplit("_", 1)[0]
            found = [f"{stem}_{i}" for i in range(first, last + 1)]
        counts = [int(n.replace(",", "")) for n in re.findall(r"\d{1,3}(?:,\d{3})+", params)]
        size = int(native) if native.isdigit() else 28  # "any": FashionMNIST's own 28
        for name, count in zip(found, counts if len(found) > 1 else counts[:1], strict=True):
            table[name] = (size, count)
    return table


def test_the_manual_model_table_is_what_mode_summary_builds() -> None:
    assert manual_model_table() == PRESET_COUNTS


@pytest.mark.parametrize(
    ("cfg", "size", "expected"),
    [
        # C1 156 + C3 2,416 + C5 48,120 + F6 10,164 + output 850
        (LeNet5ClassicConfig(), 32, 61_706),
        # LeCun's table: C3 has 60 of 96 map pairs, 60 x 25 + 16 = 1,516 (not 2,416)
        (LeNet5ClassicConfig(c3="lecun"), 32, 156 + 1_516 + 48_120 + 10_164 + 850),
        # Same layers as the classic with C5 as a 400->120 linear layer; C1 padded at 28x28.
        (LeNet5Config(), 28, 61_706),
        (LeNet5Config(), 32, 61_706),
        # Batch norm drops the conv biases (6 + 16) and adds 2 x (6 + 16) affine parameters.
        (LeNet5Config(batch_norm=True), 28, 61_728),
        # 3x3 kernels: C1 60 + C3 880, then 16x5x5 maps at 28x28 (16x6x6 at 32x32).
        (LeNet5Config(kernel_size=3), 28, 60_074),
        (LeNet5Config(kernel_size=3), 32, 81_194),
        # ... and with the extra pooling: 16x2x2 maps at 28x28 (16x3x3 at 32x32).
        (LeNet5Config(kernel_size=3, extra_pool=True), 28, 60 + 880 + 7_800 + 10_164 + 850),
        (LeNet5Config(kernel_size=3, extra_pool=True), 32, 60 + 880 + 17_400 + 10_164 + 850),
        # 784*72+72 + 72*36+36 + 36*10+10
        (MLPConfig(hidden=[72, 36]), 28, 59_518),
        (MLPConfig(hidden=[58]), 32, 60_040),
        (AlexNetSmallConfig(width=1.0), 28, 429_034),
        (AlexNetSmallConfig(), 28, 108_282),
        # AlexNet, 1 channel, 10 classes: conv1-5, then FC 9216-4096-4096-10
        (
            AlexNetConfig(batch_norm=False),
            227,
            11_712 + 614_656 + 885_120 + 1_327_488 + 884_992 + 37_752_832 + 16_781_312 + 40_970,
        ),
    ],
)
def test_exact_parameter_counts(cfg, size: int, expected: int) -> None:
    assert count_parameters(build_model(cfg, 1, size, 10)) == expected


def test_lecun_c3_table_has_60_of_96_connections() -> None:
    assert sum(len(row) for row in LECUN_C3_TABLE) == 60
    assert all(len(set(row)) == len(row) for row in LECUN_C3_TABLE)
    assert [len(row) for row in LECUN_C3_TABLE] == [3] * 6 + [4] * 9 + [6]


def test_c3_table_removes_the_connections_it_leaves_out() -> None:
    torch.manual_seed(0)
    conv = MaskedConv2d(LECUN_C3_TABLE)
    x = torch.randn(2, 6, 14, 14)
    before = conv(x)
    changed = x.clone()
    changed[:, 5] += 1.0  # only S2 map 5 changes
    after = conv(changed)
    for out_map, row in enumerate(LECUN_C3_TABLE):
        moved = not torch.allclose(before[:, out_map], after[:, out_map])
        assert moved == (5 in row), out_map


def test_c3_weights_outside_the_table_get_no_gradient_and_stay_zero() -> None:
    torch.manual_seed(0)
    model = build_model(LeNet5ClassicConfig(c3="lecun"), 1, 32, 10)
    conv = next(m for m in model.modules() if isinstance(m, MaskedConv2d))
    outside = conv.mask.expand_as(conv.weight) == 0
    assert int(outside.sum()) == 36 * 25
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.1)
    for _ in range(3):
        loss = torch.nn.functional.cross_entropy(model(torch.randn(8, 1, 32, 32)), torch.arange(8))
        optimizer.zero_grad()
        loss.backward()
        assert (conv.weight.grad[outside] == 0).all()
        assert conv.weight.grad[~outside].abs().sum() > 0
        optimizer.step()
    assert (conv.weight[outside] == 0).all()
    assert (conv.weight[~outside] != 0).all()


@pytest.mark.parametrize(
    ("target", "depth", "inputs"),
    [(61_706, 1, 784), (61_706, 3, 784), (60_806, 2, 1024), (100_000, 4, 1024), (50_000, 4, 784)],
)
def test_match_params_lands_within_one_percent(target: int, depth: int, inputs: int) -> None:
    widths = match_widths(target, depth, inputs)
    assert len(widths) == depth and len(set(widths)) == 1
    assert abs(mlp_parameters(inputs, widths, 10) - target) <= 0.01 * target
    size = int(inputs**0.5)
    model = build_model(MLPConfig(match_params=target, depth=depth), 1, size, 10)
    assert count_parameters(model) == mlp_parameters(inputs, widths, 10)


@pytest.mark.parametrize(("target", "depth"), [(100, 2), (5_000, 1), (20_000, 5), (61_706, 40)])
def test_match_params_says_clearly_when_it_cannot(target: int, depth: int) -> None:
    with pytest.raises(SweeplabError, match=rf"match_params={target}.*more than 1 % off"):
        build_model(MLPConfig(match_params=target, depth=depth), 1, 28, 10)


@pytest.mark.parametrize(
    ("name", "size", "fix"),
    [
        ("lenet5_classic", 28, "input_size=32"),
        ("alexnet", 28, "input_size=227"),
        ("alexnet_small", 4, "input_size=32"),
    ],
)
def test_model_refuses_an_input_size_it_cannot_take_in_one_line(
    name: str, size: int, fix: str
) -> None:
    with pytest.raises(SweeplabError) as info:
        build_model(MODELS[name].schema(), 1, size, 10)
    message = str(info.value)
    assert name in message and f"input_size={size}" in message
    assert fix in message and "\n" not in message


def test_no_softmax_in_forward_by_default() -> None:
    # Logits of an untrained model do not sum to one; a softmax output would.
    torch.manual_seed(0)
    for name in sorted(MODELS):
        size = sizes(name)[0]
        logits = build_model(MODELS[name].schema(), 1, size, 10)(torch.randn(8, 1, size, size))
        assert not torch.allclose(logits.sum(1), torch.ones(8), atol=1e-3), name


def test_softmax_in_forward_switch_outputs_probabilities_and_warns(caplog) -> None:
    torch.manual_seed(0)
    with caplog.at_level(logging.WARNING):
        model = build_model(LeNet5Config(softmax_in_forward=True), 1, 28, 10)
    assert SOFTMAX_WARNING in caplog.text
    out = model(torch.randn(8, 1, 28, 28))
    assert torch.allclose(out.sum(1), torch.ones(8), atol=1e-5) and (out >= 0).all()
    assert count_parameters(model) == 61_706


@pytest.mark.parametrize("init", ["default", "xavier", "kaiming"])
@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh", "scaled_tanh", "gelu"])
def test_lenet5_switches_build_and_run(init: str, activation: str) -> None:
    cfg = LeNet5Config(activation=activation, init=init, batch_norm=True, dropout=0.5, pool="avg")
    assert build_model(cfg, 1, 28, 10)(torch.randn(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
def test_max_pooling_before_a_piecewise_linear_activation_changes_no_value(
    activation: str,
) -> None:
    # LeNet-5 pools before the activation where the two commute: the same outputs and
    # gradients as the textbook conv -> activation -> pool, bit for bit.
    torch.manual_seed(0)
    model = build_model(LeNet5Config(activation=activation, dropout=0.0), 1, 28, 10)
    layers = list(model.features)
    assert isinstance(layers[1], torch.nn.MaxPool2d)  # conv, pool, activation, ...
    textbook = torch.nn.Sequential(layers[0], layers[2], layers[1], *layers[3:])
    x = torch.randn(8, 1, 28, 28)
    ours = model.features(x)
    ours.sum().backward()
    ours_grad = layers[0].weight.grad.clone()
    layers[0].weight.grad = None
    theirs = textbook(x)
    theirs.sum().backward()
    assert torch.equal(ours, theirs)
    assert torch.equal(ours_grad, layers[0].weight.grad)


def test_pool_first_puts_batch_norm_on_the_pooled_maps() -> None:
    model = build_model(LeNet5Config(batch_norm=True, pool_first=True), 1, 28, 10)
    kinds = [type(layer).__name__ for layer in model.features]
    assert kinds[:4] == ["Conv2d", "MaxPool2d", "BatchNorm2d", "LeakyReLU"]
    assert count_parameters(model) == 61_728  # the same parameters as conv -> norm -> pool
