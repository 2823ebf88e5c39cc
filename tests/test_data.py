"""Data: real FashionMNIST splits, padding, normalisation, the other datasets' on-disk formats
(MNIST, KMNIST, EMNIST, CIFAR-10 on small files the tests write), and bad files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from sweeplab import data as data_module
from sweeplab import datasets
from sweeplab.config import DatasetConfig, Resize
from sweeplab.data import load_splits
from sweeplab.datasets import DATASETS, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, read_idx
from sweeplab.errors import SweeplabError
from tests.conftest import write_idx, write_small_cifar10, write_small_idx_dataset

FASHION = DatasetConfig(name="fashion")
MNIST_FILES = DATASETS["mnist"].files  # train images, train labels, test images, test labels


def write_small_mnist(folder: Path, n_train: int = 60, n_test: int = 20, gz: bool = True) -> None:
    write_small_idx_dataset(folder, "mnist", n_train, n_test, gz)


def load(cfg: DatasetConfig, input_size: int = 28, resize: Resize = Resize.pad, stats=None):
    return load_splits(cfg, input_size, resize, stats)


@pytest.fixture(scope="module")
def fashion():
    return load(FASHION)


def test_fashion_splits_have_the_official_sizes(fashion) -> None:
    assert (len(fashion.train_y), len(fashion.val_y), len(fashion.test_y)) == (
        55_000,
        5_000,
        10_000,
    )
    assert fashion.train_x.shape[1:] == (1, 28, 28) and fashion.train_x.dtype == torch.float32
    assert fashion.classes[0] == "T-shirt/top" and len(fashion.classes) == 10


def test_training_split_is_normalised_with_its_own_statistics(fashion) -> None:
    assert abs(fashion.train_x.mean().item()) < 1e-4
    assert abs(fashion.train_x.std().item() - 1) < 1e-4
    assert 0.2 < fashion.mean < 0.4 and 0.25 < fashion.std < 0.45  # FashionMNIST's known range


def test_test_split_is_the_official_file_in_order(fashion) -> None:
    files = datasets.find_files(DATASETS["fashion"], Path("data"), download=False)
    raw = read_idx(files[2], IDX_IMAGES_MAGIC).float() / 255
    restored = fashion.test_x.squeeze(1) * fashion.std + fashion.mean
    assert torch.allclose(restored, raw, atol=1e-5)
    assert torch.equal(fashion.test_y, read_idx(files[3], IDX_LABELS_MAGIC).long())


def test_validation_split_is_fixed_and_disjoint_from_training(fashion) -> None:
    again = load(FASHION)
    assert torch.equal(again.val_x, fashion.val_x)
    other_seed = load(DatasetConfig(name="fashion", split_seed=1, subset=5000))
    assert not torch.equal(other_seed.val_x, fashion.val_x)
    # Every training image and every validation image come from the 60k, with no overlap.
    train_rows = {row.numpy().tobytes() for row in fashion.train_x[:, 0, 10]}  # a row identifies
    overlap = sum(row.numpy().tobytes() in train_rows for row in fashion.val_x[:500, 0, 10])
    assert overlap < 25  # rows of blank pixels repeat; whole images do not


def test_pad_to_32_centres_the_image_in_a_zero_border() -> None:
    small = DatasetConfig(name="fashion", subset=64)
    plain = load(small, 28)
    padded = load(small, 32, Resize.pad, stats=(plain.mean, plain.std))
    assert padded.train_x.shape[1:] == (1, 32, 32)
    assert torch.allclose(padded.train_x[:, :, 2:30, 2:30], plain.train_x)
    background = (0 - plain.mean) / plain.std
    assert torch.allclose(
        padded.train_x[:, :, :2, :], torch.full_like(padded.train_x[:, :, :2, :], background)
    )


def test_resize_interpolates_to_the_requested_size() -> None:
    resized = load(DatasetConfig(name="fashion", subset=16), 32, Resize.resize)
    assert resized.train_x.shape == (16, 1, 32, 32)


def test_subset_caps_every_split() -> None:
    small = load(DatasetConfig(name="fashion", subset=100))
    assert (len(small.train_y), len(small.val_y), len(small.test_y)) == (100, 100, 100)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_reads_idx_files_in_torchvision_layout(tmp_path: Path, gz: bool) -> None:
    write_small_mnist(tmp_path / "MNIST" / "raw", gz=gz)
    splits = load(DatasetConfig(name="mnist", root=str(tmp_path), val_size=10))
    assert (len(splits.train_y), len(splits.val_y), len(splits.test_y)) == (50, 10, 20)
    assert splits.classes == tuple("0123456789")


def test_missing_dataset_names_the_three_ways(tmp_path: Path, monkeypatch) -> None:
    no_debian = dataclasses.replace(DATASETS["fashion"], system_folders=(tmp_path / "no-debian",))
    monkeypatch.setitem(DATASETS, "fashion", no_debian)
    with pytest.raises(SweeplabError) as info:
        load(DatasetConfig(name="fashion", root=str(tmp_path)))
    message = str(info.value)
    assert str(tmp_path / "FashionMNIST" / "raw") in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "dataset.download=true" in message and "\n" not in message


def test_truncated_idx_file_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "MNIST" / "raw"
    write_small_mnist(folder, gz=False)
    images = folder / MNIST_FILES[0]
    images.write_bytes(images.read_bytes()[:-100])
    with pytest.raises(SweeplabError, match="train-images-idx3-ubyte") as info:
        load(DatasetConfig(name="mnist", root=str(tmp_path), val_size=10))
    assert "truncated" in str(info.value)


def test_a_labels_file_in_place_of_an_images_file_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "MNIST" / "raw"
    write_small_mnist(folder, gz=False)
    labels = (folder / MNIST_FILES[1]).read_bytes()
    (folder / MNIST_FILES[0]).write_bytes(labels)
    with pytest.raises(SweeplabError, match="not an IDX file of the expected kind"):
        load(DatasetConfig(name="mnist", root=str(tmp_path), val_size=10))


def test_corrupt_gzip_file_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "MNIST" / "raw"
    write_small_mnist(folder, gz=True)
    labels = folder / (MNIST_FILES[3] + ".gz")
    labels.write_bytes(labels.read_bytes()[:20])  # cut inside the compressed stream
    with pytest.raises(SweeplabError, match=r"t10k-labels-idx1-ubyte\.gz"):
        load(DatasetConfig(name="mnist", root=str(tmp_path), val_size=10))


def test_val_size_larger_than_the_training_set_is_refused(tmp_path: Path) -> None:
    write_small_mnist(tmp_path / "MNIST" / "raw")
    with pytest.raises(SweeplabError, match=r"dataset\.val_size=100"):
        load(DatasetConfig(name="mnist", root=str(tmp_path), val_size=100))


def test_parsed_files_are_cached_and_the_cache_is_used(tmp_path: Path, monkeypatch) -> None:
    write_small_mnist(tmp_path / "MNIST" / "raw")
    cfg = DatasetConfig(name="mnist", root=str(tmp_path), val_size=10)
    first = load(cfg)
    assert len(list((tmp_path / "cache").glob("raw-*.pt"))) == 1

    def no_parsing(files, spec):
        raise AssertionError("parsed the IDX files although a cache exists")

    monkeypatch.setitem(DATASETS, "mnist", dataclasses.replace(DATASETS["mnist"], read=no_parsing))
    second = load(cfg)
    assert torch.equal(first.train_x, second.train_x) and torch.equal(first.test_y, second.test_y)


def test_a_broken_cache_file_is_parsed_again_and_rewritten(tmp_path: Path) -> None:
    write_small_mnist(tmp_path / "MNIST" / "raw")
    cfg = DatasetConfig(name="mnist", root=str(tmp_path), val_size=10)
    expected = load(cfg)
    (cache,) = (tmp_path / "cache").glob("raw-*.pt")
    cache.write_bytes(b"not a tensor file")
    again = load(cfg)
    assert torch.equal(expected.train_x, again.train_x)
    assert cache.stat().st_size > 100  # rewritten


def test_an_unwritable_cache_folder_still_loads_the_data(tmp_path: Path) -> None:
    write_small_mnist(tmp_path / "MNIST" / "raw")
    (tmp_path / "cache").write_text("a file where the cache folder belongs")
    splits = load(DatasetConfig(name="mnist", root=str(tmp_path), val_size=10))
    assert len(splits.train_y) == 50 and len(splits.test_y) == 20


def test_changed_idx_files_get_a_new_cache_entry(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    write_small_mnist(raw)
    cfg = DatasetConfig(name="mnist", root=str(tmp_path), val_size=10)
    load(cfg)
    write_small_mnist(raw, n_train=80)  # same names, new content (size and mtime differ)
    assert len(load(cfg).train_y) == 70
    assert len(list((tmp_path / "cache").glob("raw-*.pt"))) == 2


@pytest.mark.parametrize("resize", [Resize.pad, Resize.resize])
def test_lazy_images_equal_the_eager_tensor_batch_by_batch(
    tmp_path: Path, monkeypatch, resize: Resize
) -> None:
    write_small_mnist(tmp_path / "MNIST" / "raw")
    cfg = DatasetConfig(name="mnist", root=str(tmp_path), val_size=10)
    eager = load(cfg, 36, resize)
    monkeypatch.setattr(data_module, "MAX_EAGER_BYTES", 0)
    lazy = load(cfg, 36, resize)
    assert isinstance(lazy.train_x, data_module.LazyImages)
    assert (lazy.mean, lazy.std) == pytest.approx((eager.mean, eager.std), rel=1e-6)
    index = torch.tensor([3, 0, 7])
    assert torch.allclose(lazy.train_x[index], eager.train_x[index], atol=1e-5)
    assert torch.allclose(lazy.test_x[2:9], eager.test_x[2:9], atol=1e-5)
    assert lazy.train_x.shape == eager.train_x.shape and len(lazy.val_x) == len(eager.val_x)


@pytest.mark.parametrize("name", ["mnist", "kmnist", "emnist"])
def test_idx_datasets_read_torchvision_layout_with_their_classes(tmp_path: Path, name: str) -> None:
    spec = DATASETS[name]
    write_small_idx_dataset(tmp_path / spec.folder, name, n_train=60, n_test=20, gz=False)
    splits = load(DatasetConfig(name=name, root=str(tmp_path), val_size=10))
    assert (len(splits.train_y), len(splits.val_y), len(splits.test_y)) == (50, 10, 20)
    assert splits.classes == spec.classes and len(spec.classes) == (47 if name == "emnist" else 10)
    assert splits.train_x.shape[1:] == (1, 28, 28)


def test_emnist_images_are_turned_upright(tmp_path: Path) -> None:
    # EMNIST's files hold each image transposed; the splits hold them as they are drawn.
    spec = DATASETS["emnist"]
    arrays = write_small_idx_dataset(tmp_path / spec.folder, "emnist", n_train=30, n_test=10)
    splits = load(DatasetConfig(name="emnist", root=str(tmp_path), val_size=5))
    in_file = torch.tensor(arrays[spec.files[2]], dtype=torch.float32) / 255
    restored = splits.to_pixels(splits.test_x).squeeze(1)
    assert torch.allclose(restored, in_file.transpose(1, 2), atol=1e-5)
    assert not torch.allclose(restored, in_file, atol=1e-2)


def test_cifar10_reads_the_pickled_batches_as_3_channel_32x32_images(tmp_path: Path) -> None:
    batches = write_small_cifar10(tmp_path, per_batch=12)
    splits = load(DatasetConfig(name="cifar10", root=str(tmp_path), val_size=10), 32)
    assert (len(splits.train_y), len(splits.val_y), len(splits.test_y)) == (50, 10, 12)
    assert splits.test_x.shape == (12, 3, 32, 32)
    expected = torch.tensor(batches["test_batch"]["data"]).reshape(12, 3, 32, 32).float() / 255
    assert torch.allclose(splits.to_pixels(splits.test_x), expected, atol=1e-5)
    assert splits.test_y.tolist() == batches["test_batch"]["labels"]
    assert splits.classes[0] == "airplane"


def test_a_cifar_batch_that_is_not_a_pickle_is_named(tmp_path: Path) -> None:
    write_small_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(SweeplabError, match="data_batch_3"):
        load(DatasetConfig(name="cifar10", root=str(tmp_path), val_size=10), 32)


def test_labels_beyond_the_class_count_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "MNIST" / "raw"
    write_small_mnist(folder, gz=False)
    write_idx(folder / MNIST_FILES[1], np.full(60, 12))
    with pytest.raises(SweeplabError, match="labels below 10"):
        load(DatasetConfig(name="mnist", root=str(tmp_path), val_size=10))
