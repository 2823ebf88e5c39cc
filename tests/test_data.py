"""Data: real FashionMNIST splits, padding, normalisation, the MNIST path, and bad files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from sweeplab import data as data_module
from sweeplab.config import DatasetConfig, Resize
from sweeplab.data import IDX_FILES, load_splits, read_idx
from sweeplab.errors import SweeplabError

FASHION = DatasetConfig(name="fashion")


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (gzipped when the name ends in .gz)."""
    magic = 0x0800 + array.ndim
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)


def write_small_mnist(folder: Path, n_train: int = 60, n_test: int = 20, gz: bool = True) -> None:
    """Four small IDX files in torchvision's MNIST layout, digits drawn at random."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for split, n in (("train", n_train), ("test", n_test)):
        write_idx(
            folder / (IDX_FILES[f"{split}_images"] + suffix), rng.integers(0, 256, (n, 28, 28))
        )
        write_idx(folder / (IDX_FILES[f"{split}_labels"] + suffix), rng.integers(0, 10, n))


@pytest.fixture(scope="module")
def fashion():
    return load_splits(FASHION)


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
    files = data_module.find_idx_files(FASHION)
    raw = read_idx(files["test_images"], data_module.IDX_IMAGES_MAGIC).float() / 255
    restored = fashion.test_x.squeeze(1) * fashion.std + fashion.mean
    assert torch.allclose(restored, raw, atol=1e-5)
    assert torch.equal(fashion.test_y, read_idx(files["test_labels"], 2049).long())


def test_validation_split_is_fixed_and_disjoint_from_training(fashion) -> None:
    again = load_splits(FASHION)
    assert torch.equal(again.val_x, fashion.val_x)
    other_seed = load_splits(DatasetConfig(name="fashion", split_seed=1, subset=5000))
    assert not torch.equal(other_seed.val_x, fashion.val_x)
    # Every training image and every validation image come from the 60k, with no overlap.
    train_rows = {row.numpy().tobytes() for row in fashion.train_x[:, 0, 10]}  # a row identifies
    overlap = sum(row.numpy().tobytes() in train_rows for row in fashion.val_x[:500, 0, 10])
    assert overlap < 25  # rows of blank pixels repeat; whole images do not


def test_pad_to_32_centres_the_image_in_a_zero_border() -> None:
    small = DatasetConfig(name="fashion", subset=64)
    plain = load_splits(small, 28)
    padded = load_splits(small, 32, Resize.pad, stats=(plain.mean, plain.std))
    assert padded.train_x.shape[1:] == (1, 32, 32)
    assert torch.allclose(padded.train_x[:, :, 2:30, 2:30], plain.train_x)
    background = (0 - plain.mean) / plain.std
    assert torch.allclose(
        padded.train_x[:, :, :2, :], torch.full_like(padded.train_x[:, :, :2, :], background)
    )


def test_resize_interpolates_to_the_requested_size() -> None:
    resized = load_splits(DatasetConfig(name="fashion", subset=16), 32, Resize.resize)
    assert resized.train_x.shape == (16, 1, 32, 32)


def test_subset_caps_every_split() -> None:
    small = load_splits(DatasetConfig(name="fashion", subset=100))
    assert (len(small.train_y), len(small.val_y), len(small.test_y)) == (100, 100, 100)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_reads_idx_files_in_torchvision_layout(tmp_path: Path, gz: bool) -> None:
    write_small_mnist(tmp_path / "MNIST" / "raw", gz=gz)
    splits = load_splits(DatasetConfig(name="mnist", root=str(tmp_path), val_size=10))
    assert (len(splits.train_y), len(splits.val_y), len(splits.test_y)) == (50, 10, 20)
    assert splits.classes == tuple("0123456789")


def test_missing_dataset_names_the_three_ways(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(data_module, "DEBIAN_FASHION_DIR", tmp_path / "no-debian")
    with pytest.raises(SweeplabError) as info:
        load_splits(DatasetConfig(name="fashion", root=str(tmp_path)))
    message = str(info.value)
    assert str(tmp_path / "FashionMNIST" / "raw") in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "dataset.download=true" in message and "\n" not in message


def test_truncated_idx_file_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "MNIST" / "raw"
    write_small_mnist(folder, gz=False)
    images = folder / IDX_FILES["train_images"]
    images.write_bytes(images.read_bytes()[:-100])
    with pytest.raises(SweeplabError, match="train-images-idx3-ubyte") as info:
        load_splits(DatasetConfig(name="mnist", root=str(tmp_path), val_size=10))
    assert "truncated" in str(info.value)


def test_a_labels_file_in_place_of_an_images_file_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "MNIST" / "raw"
    write_small_mnist(folder, gz=False)
    labels = (folder / IDX_FILES["train_labels"]).read_bytes()
    (folder / IDX_FILES["train_images"]).write_bytes(labels)
    with pytest.raises(SweeplabError, match="not an IDX file of the expected kind"):
        load_splits(DatasetConfig(name="mnist", root=str(tmp_path), val_size=10))


def test_corrupt_gzip_file_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "MNIST" / "raw"
    write_small_mnist(folder, gz=True)
    labels = folder / (IDX_FILES["test_labels"] + ".gz")
    labels.write_bytes(labels.read_bytes()[:20])  # cut inside the compressed stream
    with pytest.raises(SweeplabError, match=r"t10k-labels-idx1-ubyte\.gz"):
        load_splits(DatasetConfig(name="mnist", root=str(tmp_path), val_size=10))


def test_val_size_larger_than_the_training_set_is_refused(tmp_path: Path) -> None:
    write_small_mnist(tmp_path / "MNIST" / "raw")
    with pytest.raises(SweeplabError, match=r"dataset\.val_size=100"):
        load_splits(DatasetConfig(name="mnist", root=str(tmp_path), val_size=100))


def test_parsed_files_are_cached_and_the_cache_is_used(tmp_path: Path, monkeypatch) -> None:
    write_small_mnist(tmp_path / "MNIST" / "raw")
    cfg = DatasetConfig(name="mnist", root=str(tmp_path), val_size=10)
    first = load_splits(cfg)
    assert len(list((tmp_path / "cache").glob("idx-*.pt"))) == 1

    def no_parsing(files):
        raise AssertionError("parsed the IDX files although a cache exists")

    monkeypatch.setattr(data_module, "_read_all", no_parsing)
    second = load_splits(cfg)
    assert torch.equal(first.train_x, second.train_x) and torch.equal(first.test_y, second.test_y)


def test_a_broken_cache_file_is_parsed_again_and_rewritten(tmp_path: Path) -> None:
    write_small_mnist(tmp_path / "MNIST" / "raw")
    cfg = DatasetConfig(name="mnist", root=str(tmp_path), val_size=10)
    expected = load_splits(cfg)
    (cache,) = (tmp_path / "cache").glob("idx-*.pt")
    cache.write_bytes(b"not a tensor file")
    again = load_splits(cfg)
    assert torch.equal(expected.train_x, again.train_x)
    assert cache.stat().st_size > 100  # rewritten


def test_an_unwritable_cache_folder_still_loads_the_data(tmp_path: Path) -> None:
    write_small_mnist(tmp_path / "MNIST" / "raw")
    (tmp_path / "cache").write_text("a file where the cache folder belongs")
    splits = load_splits(DatasetConfig(name="mnist", root=str(tmp_path), val_size=10))
    assert len(splits.train_y) == 50 and len(splits.test_y) == 20


def test_changed_idx_files_get_a_new_cache_entry(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    write_small_mnist(raw)
    cfg = DatasetConfig(name="mnist", root=str(tmp_path), val_size=10)
    load_splits(cfg)
    write_small_mnist(raw, n_train=80)  # same names, new content (size and mtime differ)
    assert len(load_splits(cfg).train_y) == 70
    assert len(list((tmp_path / "cache").glob("idx-*.pt"))) == 2


@pytest.mark.parametrize("resize", [Resize.pad, Resize.resize])
def test_lazy_images_equal_the_eager_tensor_batch_by_batch(
    tmp_path: Path, monkeypatch, resize: Resize
) -> None:
    write_small_mnist(tmp_path / "MNIST" / "raw")
    cfg = DatasetConfig(name="mnist", root=str(tmp_path), val_size=10)
    eager = load_splits(cfg, 36, resize)
    monkeypatch.setattr(data_module, "MAX_EAGER_BYTES", 0)
    lazy = load_splits(cfg, 36, resize)
    assert isinstance(lazy.train_x, data_module.LazyImages)
    assert (lazy.mean, lazy.std) == pytest.approx((eager.mean, eager.std), rel=1e-6)
    index = torch.tensor([3, 0, 7])
    assert torch.allclose(lazy.train_x[index], eager.train_x[index], atol=1e-5)
    assert torch.allclose(lazy.test_x[2:9], eager.test_x[2:9], atol=1e-5)
    assert lazy.train_x.shape == eager.train_x.shape and len(lazy.val_x) == len(eager.val_x)
