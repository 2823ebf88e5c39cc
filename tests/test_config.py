"""Config composition: every option composes, typos and wrong types fail, bad values are named."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf.errors import ConfigKeyError, ValidationError

from sweeplab.config import RunConfig, check_config, config_hash
from sweeplab.errors import SweeplabError
from tests.conftest import CONF

GROUP_OPTIONS = [
    (group.name, option.stem)
    for group in sorted(CONF.iterdir())
    if group.is_dir()
    for option in sorted(group.glob("*.yaml"))
]
# The input sizes each model can take; the others must be refused with a clear message.
MODEL_SIZE = {
    "lenet5_classic": ["input_size=32"],
    "lenet5_classic_lecun": ["input_size=32"],
    "alexnet": ["input_size=227", "resize=resize"],
}
# Groups that the primary config does not list: added with `+group=option`.
ADDED_GROUPS = {"experiment", "lenet_variant"}


def test_every_group_has_options() -> None:
    groups = {group for group, _ in GROUP_OPTIONS}
    assert {"model", "dataset", "optimizer", "scheduler", "regularization"} <= groups


@pytest.mark.parametrize(("group", "option"), GROUP_OPTIONS)
def test_every_option_of_every_group_composes_and_checks(make_cfg, group: str, option: str) -> None:
    # Experiments are added to the defaults list (+experiment=...), not chosen from it.
    overrides = [f"{'+' if group in ADDED_GROUPS else ''}{group}={option}"]
    if group == "model" and option in MODEL_SIZE:
        overrides += MODEL_SIZE[option]
    run = check_config(make_cfg(*overrides))
    assert isinstance(run, RunConfig)


def test_defaults_are_lenet5_on_fashion(make_cfg) -> None:
    run = check_config(make_cfg())
    assert (run.model.name, run.dataset.name, run.input_size) == ("lenet5", "fashion", 28)
    assert run.mode == "train" and run.ckpt is None


@pytest.mark.parametrize(
    "override", ["model.kernal_size=3", "optimizer.momentum=0.9", "dataset.sbuset=10"]
)
def test_typo_key_fails_at_compose(make_cfg, override: str) -> None:
    # optimizer.momentum is an SGD key; the default optimizer (AdamW) has no such key.
    with pytest.raises((ConfigCompositionException, ConfigKeyError)):
        make_cfg(override)


@pytest.mark.parametrize("override", ["+model.kernal_size=3", "+dataset.sbuset=10", "+epoch=3"])
def test_added_unknown_key_is_refused_by_the_check(make_cfg, override: str) -> None:
    # Hydra's `+key=value` opens struct mode, so the schema check catches these instead.
    with pytest.raises(SweeplabError, match="unknown key"):
        check_config(make_cfg(override))


@pytest.mark.parametrize(
    "override", ["epochs=three", "model.batch_norm=maybe", "model.activation=swish", "mode=fit"]
)
def test_wrong_type_or_enum_fails_at_compose(make_cfg, override: str) -> None:
    with pytest.raises((ConfigCompositionException, ValidationError)):
        make_cfg(override)


def test_unknown_model_lists_the_choices(make_cfg) -> None:
    with pytest.raises(MissingConfigException) as info:
        make_cfg("model=lenet6")
    assert "lenet5" in str(info.value) and "mlp" in str(info.value)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("optimizer.lr=0", "optimizer.lr"),
        ("optimizer.lr=-0.1", "optimizer.lr"),
        ("epochs=0", "epochs"),
        ("batch_size=0", "batch_size"),
        ("regularization.noise_std=-0.1", "regularization.noise_std"),
        ("regularization.weight_decay=-1e-4", "regularization.weight_decay"),
        ("dataset.val_size=0", "dataset.val_size"),
        ("dataset.val_size=60000", "dataset.val_size"),
        ("dataset.subset=0", "dataset.subset"),
        ("mode=eval", "ckpt"),
        ("mode=predict", "ckpt"),
        ("model.dropout=1.0", "model.dropout"),
        ("model.kernel_size=7", "model.kernel_size"),
        ("model=mlp model.hidden=[]", "model.hidden"),
        ("model=mlp model.hidden=[64,0]", "model.hidden"),
        ("model.channels=[6]", "model.channels"),
        ("model.channels=[6,0]", "model.channels"),
        ("model.fc=[120,0]", "model.fc"),
        ("model=mlp model.depth=0", "model.depth"),
        ("model=mlp model.match_params=0", "model.match_params"),
        ("model=alexnet_small model.width=0", "model.width"),
        ("model=alexnet_small model.dropout=1.5", "model.dropout"),
        ("input_size=31", "input_size"),
        ("input_size=4", "input_size"),
    ],
)
def test_bad_value_is_one_line_naming_the_key(make_cfg, override: str, key: str) -> None:
    with pytest.raises(SweeplabError) as info:
        check_config(make_cfg(*override.split()))
    message = str(info.value)
    assert f"{key}=" in message and "\n" not in message


def test_config_hash_ignores_runtime_keys_but_not_results_keys(make_cfg) -> None:
    base = config_hash(make_cfg())
    assert config_hash(make_cfg("threads=1", "progress=false", "figures=false")) == base
    assert config_hash(make_cfg("seed=1")) != base
    assert config_hash(make_cfg("regularization.noise_std=0.1")) != base
