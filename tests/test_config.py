"""Config composition: every option composes, typos and wrong types fail, bad values are named."""

from __future__ import annotations

import pytest
import yaml
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from sweeplab.config import check_config, config_hash, runtime_keys
from sweeplab.datasets import DATASETS
from sweeplab.errors import SweeplabError
from sweeplab.models import MODELS
from tests.conftest import CONF, compose_config

GROUP_OPTIONS = [
    (group.name, option.stem)
    for group in sorted(CONF.iterdir())
    if group.is_dir()
    for option in sorted(group.glob("*.yaml"))
]
# Groups that the primary config does not list: added with `+group=option`.
ADDED_GROUPS = {"experiment", "lenet_variant"}


def test_every_group_has_options() -> None:
    groups = {group for group, _ in GROUP_OPTIONS}
    assert {"model", "dataset", "optimizer", "scheduler", "regularization"} <= groups


@pytest.mark.parametrize(("group", "option"), GROUP_OPTIONS)
def test_every_option_of_every_group_composes_checks_and_holds_its_file_values(
    make_cfg, group: str, option: str
) -> None:
    # Experiments are added to the defaults list (+experiment=...), not chosen from it.
    cfg = make_cfg(f"{'+' if group in ADDED_GROUPS else ''}{group}={option}")
    check_config(cfg)
    text = (CONF / group / f"{option}.yaml").read_text()
    written = yaml.safe_load(text) or {}
    written.pop("defaults", None)
    written.pop("hydra", None)
    composed = OmegaConf.to_container(cfg, enum_to_str=True)
    node = composed if "@package _global_" in text else composed[group]
    assert _holds(node, written), (group, option)


def _holds(node: dict, written: dict) -> bool:
    """Every key the YAML file sets has that value in the composed config."""
    return all(
        _holds(node[key], value) if isinstance(value, dict) else node[key] == value
        for key, value in written.items()
    )


@pytest.mark.parametrize("group", ["model", "optimizer", "scheduler", "regularization", "dataset"])
def test_yaml_files_state_only_what_differs_from_their_schema(group: str) -> None:
    # One source of truth: a value equal to the schema's default must not be repeated.
    from sweeplab import config

    for path in sorted((CONF / group).glob("*.yaml")):
        text = path.read_text()
        written = yaml.safe_load(text) or {}
        (schema_ref,) = written.pop("defaults")
        name = schema_ref.split("/")[-1].removesuffix("@_here_").removesuffix(f"@{group}")
        if "@package _global_" in text:  # a preset that also sets a run key (input_size)
            written = written[group]
        schemas = {
            "model": {n: s.schema for n, s in MODELS.items()},
            "optimizer": config.OPTIMIZERS,
            "scheduler": {"scheduler": config.SchedulerConfig},
            "regularization": {"regularization": config.RegularizationConfig},
            "dataset": {"dataset": config.DatasetConfig},
        }[group]
        defaults = OmegaConf.to_container(OmegaConf.structured(schemas[name]), enum_to_str=True)
        repeated = {k: v for k, v in written.items() if defaults.get(k) == v}
        assert not repeated, f"{path.name} repeats schema defaults {repeated}"


def test_models_run_at_their_native_size_unless_input_size_is_given(make_cfg) -> None:
    assert check_config(make_cfg("model=lenet5_classic")).input_size == 32
    assert check_config(make_cfg("model=lenet5_classic_lecun")).input_size == 32
    alexnet = check_config(make_cfg("model=alexnet"))
    assert (alexnet.input_size, alexnet.resize) == (227, "resize")  # 227 - 28 is odd
    assert check_config(make_cfg("model=mlp")).input_size == 28  # no native size: the data's
    assert check_config(make_cfg("model=mlp", "dataset=cifar10")).input_size == 32
    # the study's parameter-matched MLPs are 32x32 models, as the study and model table say
    assert check_config(make_cfg("model=custom_mlp_1")).input_size == 32
    assert check_config(make_cfg("model=custom_mlp_1", "input_size=28")).input_size == 28
    explicit = check_config(make_cfg("model=lenet5_classic", "input_size=36"))
    assert (explicit.input_size, explicit.resize) == (36, "pad")


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_every_registered_dataset_has_its_yaml(make_cfg, dataset: str) -> None:
    assert check_config(make_cfg(f"dataset={dataset}")).dataset.name == dataset


def test_runtime_keys_are_declared_once_and_hydra_names_job_folders_without_them() -> None:
    keys = runtime_keys()
    assert {"threads", "device", "progress", "figures", "dataset.root", "predict.n"} <= set(keys)
    assert "seed" not in keys and "regularization.noise_std" not in keys
    cfg = compose_config(with_hydra=True)
    excluded = list(cfg.hydra.job.config.override_dirname.exclude_keys)
    assert excluded == ["experiment", "hparams_search", "logger", *keys]
    # the trackers' keys and what a search reads: how a run is watched, not what it computes
    assert {"logger.mlflow.tracking_uri", "objective"} <= set(keys)


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
        ("input_size=31 resize=pad", "input_size"),
        ("dataset=cifar10 input_size=30 resize=pad", "input_size"),
        ("input_size=4", "input_size"),
    ],
)
def test_bad_value_is_one_line_naming_the_key(make_cfg, override: str, key: str) -> None:
    with pytest.raises(SweeplabError) as info:
        check_config(make_cfg(*override.split()))
    message = str(info.value)
    assert f"{key}=" in message and "\n" not in message


def test_config_hash_ignores_runtime_keys_but_not_results_keys(make_cfg) -> None:
    def hash_of(*overrides: str) -> str:
        return config_hash(check_config(make_cfg(*overrides)))

    base = hash_of()
    assert (
        hash_of("threads=1", "progress=false", "figures=false", "dataset.root=/elsewhere") == base
    )
    assert hash_of("input_size=28", "resize=pad") == base  # what the defaults resolve to
    assert hash_of("seed=1") != base
    assert hash_of("regularization.noise_std=0.1") != base


def test_a_search_file_sets_its_own_sweep_folder_and_epochs(make_cfg) -> None:
    cfg = make_cfg("hparams_search=fashion_optuna", with_hydra=True)
    assert cfg.hydra.sweep.dir == "multirun/fashion_optuna" and cfg.epochs == 3
    assert cfg.hydra.sweeper._target_.endswith("optuna_sweeper.SweeplabOptunaSweeper")
    assert cfg.hydra.sweeper.metric_names == "val_accuracy"  # the run's objective, by name
    subdir = OmegaConf.to_container(cfg.hydra.sweep, resolve=False)["subdir"]  # per job
    assert subdir.startswith("${sweeplab.search_dirname:${hydra.job.num},")
