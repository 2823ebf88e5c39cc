"""A model is a module and a YAML file, a dataset an entry and a YAML file: shown by adding
each here (in the ConfigStore instead of a file) and training it through `train_and_evaluate`,
and by the bundled datasets that differ from FashionMNIST in channels, size and classes."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch
from hydra.core.config_store import ConfigStore
from torch import nn

from sweeplab.config import DatasetConfig
from sweeplab.datasets import DATASETS
from sweeplab.models import MODELS, ModelConfig, register_model
from sweeplab.train import train_and_evaluate
from tests.conftest import QUICK, run_cli, write_small_cifar10, write_small_idx_dataset


@dataclass
class ToyConfig(ModelConfig):
    name: str = "toy"
    width: int = 7


class Toy(nn.Module):
    """Global average of each channel, one hidden layer: geometry-free, any channels or classes."""

    def __init__(self, in_channels: int, input_size: int, num_classes: int, width: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(in_channels, width),
            nn.ReLU(),
            nn.Linear(width, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


@pytest.fixture
def toy_model() -> Iterator[None]:
    register_model(ToyConfig)(Toy)
    ConfigStore.instance().store(group="model", name="toy", node=ToyConfig)
    yield
    del MODELS["toy"]  # the other tests see the bundled models only


def test_a_model_registered_in_the_test_trains_one_epoch(make_cfg, toy_model, tmp_path) -> None:
    summary = train_and_evaluate(make_cfg(*QUICK, "model=toy", "model.width=5"), tmp_path)
    assert summary.status == "completed" and summary.model == "toy"
    assert summary.params == (1 * 5 + 5) + (5 * 10 + 10)  # the width came through the config
    assert summary.input_size == 28  # no native size: the dataset's


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "data"
    DATASETS["tiny"] = dataclasses.replace(
        DATASETS["mnist"], name="tiny", folder="Tiny/raw", classes=tuple("abc")
    )
    ConfigStore.instance().store(group="dataset", name="tiny", node=DatasetConfig(name="tiny"))
    folder = root / "Tiny" / "raw"
    write_small_idx_dataset(folder, "tiny", n_train=300, n_test=60)
    yield root
    del DATASETS["tiny"]


def test_a_dataset_entry_added_in_the_test_trains_one_epoch(
    make_cfg, tiny_dataset: Path, tmp_path: Path
) -> None:
    overrides = ["model=lenet5", "dataset=tiny", f"dataset.root={tiny_dataset}"]
    cfg = make_cfg(*QUICK, *overrides, "dataset.val_size=60")
    summary = train_and_evaluate(cfg, tmp_path / "run")
    assert summary.status == "completed" and summary.dataset == "tiny"
    assert summary.params == 61_706 - 7 * 85  # three outputs instead of ten


# (dataset, write its files, LeNet-5's parameters for its channels and classes)
BUNDLED = {
    "mnist": (lambda root: write_small_idx_dataset(root / "MNIST/raw", "mnist", 300, 60), 61_706),
    "kmnist": (
        lambda root: write_small_idx_dataset(root / "KMNIST/raw", "kmnist", 300, 60),
        61_706,
    ),
    # 47 outputs: 84 x 37 weights and 37 biases more than ten
    "emnist": (
        lambda root: write_small_idx_dataset(root / "EMNIST/raw", "emnist", 300, 60),
        61_706 + 37 * 85,
    ),
    # 3 input channels at 32x32 (C1 unpadded): 2 x 150 weights more in C1
    "cifar10": (lambda root: write_small_cifar10(root, per_batch=60), 61_706 + 300),
}


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_every_bundled_dataset_trains_lenet5_at_its_own_channels_size_and_classes(
    make_cfg, tmp_path: Path, name: str
) -> None:
    write_files, params = BUNDLED[name]
    write_files(tmp_path / "data")
    overrides = ["model=lenet5", f"dataset={name}", f"dataset.root={tmp_path / 'data'}"]
    overrides.append("dataset.val_size=60")
    summary = train_and_evaluate(make_cfg(*QUICK, *overrides), tmp_path / "run")
    assert summary.status == "completed" and summary.params == params
    assert summary.input_size == DATASETS[name].image_size
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert list(metrics.split) == ["train", "val", "test"]


@pytest.mark.parametrize("name", ["kmnist", "emnist", "cifar10"])
def test_cfg_job_of_every_new_dataset_composes(name: str) -> None:
    result = run_cli(f"dataset={name}", "--cfg", "job")
    assert result.returncode == 0, result.stderr
    assert f"name: {name}" in result.stdout
