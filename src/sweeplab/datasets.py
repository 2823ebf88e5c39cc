"""The dataset registry: one entry per dataset (its files, channels, image size, classes) and
the readers of torchvision's two on-disk formats, IDX (the MNIST family) and CIFAR's pickles.

A new dataset in one of these formats is one `DatasetSpec` in `DATASETS` plus its
`conf/dataset/<name>.yaml`. Files are looked for offline first: under `dataset.root` in
torchvision's layout, then in the spec's system folders (Debian's FashionMNIST package);
torchvision downloads them only with `dataset.download=true`.
"""

from __future__ import annotations

import gzip
import pickle
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sweeplab.errors import SweeplabError

# uint8 images N x C x H x W and int64 labels, for the official training and test splits
RawSplits = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
REFETCH = "delete it and get it again (see dataset.root, dataset.download)"


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    torchvision_class: str  # downloads go through torchvision.datasets.<this>
    folder: str  # under dataset.root, as torchvision lays it out
    files: tuple[str, ...]  # the file names the reader needs (IDX files may also end in .gz)
    read: Callable[[list[Path], DatasetSpec], RawSplits]
    classes: tuple[str, ...]
    channels: int = 1
    image_size: int = 28
    transpose: bool = False  # EMNIST's files hold each image transposed
    # Whether a mirror image keeps its class (a mirrored shoe is a shoe, a mirrored 2 is not):
    # regularization.hflip and tta follow it unless set (config.py's `mirror` node).
    mirror_invariant: bool = False
    system_folders: tuple[Path, ...] = ()  # searched after dataset.root
    install_hint: str = "copy them from another machine into that folder"
    download_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


# --- IDX: MNIST, FashionMNIST, KMNIST, EMNIST -------------------------------------------------


def read_idx(path: Path, magic: int) -> torch.Tensor:
    """Parse one IDX file (optionally gzipped) into a uint8 tensor; raise naming a bad file."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path) as file:
                raw = file.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise SweeplabError(f"corrupt or truncated IDX file {path} ({err}): {REFETCH}") from err
    if len(raw) < 8 or int.from_bytes(raw[:4], "big") != magic:
        raise SweeplabError(f"{path} is not an IDX file of the expected kind: {REFETCH}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + int(torch.tensor(shape).prod())
    if len(raw) != expected:
        raise SweeplabError(
            f"truncated or corrupt IDX file {path}: {len(raw)} bytes, its header promises "
            f"{expected}: {REFETCH}"
        )
    return torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8).reshape(shape)


def _checked(
    x: torch.Tensor, y: torch.Tensor, spec: DatasetSpec, source: Path
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as N x C x H x W and labels as int64, after checking they fit the spec."""
    shape = (spec.channels, spec.image_size, spec.image_size)
    if len(x) != len(y) or tuple(x.shape[1:]) != shape or int(y.max()) >= spec.num_classes:
        raise SweeplabError(
            f"{source} holds {len(x)} images of {tuple(x.shape[1:])} for {len(y)} labels up to "
            f"{int(y.max())}; {spec.name} has N images of {shape} and labels below "
            f"{spec.num_classes}: get the files again"
        )
    return x, y.long()


def read_idx_splits(paths: list[Path], spec: DatasetSpec) -> RawSplits:
    """Train images, train labels, test images, test labels: four IDX files."""
    splits = []
    for images, labels in ((paths[0], paths[1]), (paths[2], paths[3])):
        x = read_idx(images, IDX_IMAGES_MAGIC)
        if spec.transpose:
            x = x.transpose(1, 2).contiguous()
        splits += _checked(x.unsqueeze(1), read_idx(labels, IDX_LABELS_MAGIC), spec, images)
    return tuple(splits)  # type: ignore[return-value]


def idx_files(prefix: str = "", train: str = "train", test: str = "t10k") -> tuple[str, ...]:
    return tuple(
        f"{prefix}{split}-{kind}"
        for split in (train, test)
        for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")
    )


# --- CIFAR: the pickled batches of cifar-10-batches-py ----------------------------------------


def read_cifar_splits(paths: list[Path], spec: DatasetSpec) -> RawSplits:
    """The five training batches and the test batch, read as torchvision's CIFAR10 reads them."""
    images, labels = [], []
    for path in paths:
        try:
            with path.open("rb") as file:
                batch = pickle.load(file, encoding="latin1")
            images.append(np.asarray(batch["data"], dtype=np.uint8))
            labels.extend(batch["labels"])
        except (OSError, EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError) as err:
            raise SweeplabError(f"corrupt CIFAR batch file {path} ({err}): {REFETCH}") from err
    size = spec.image_size
    x = torch.from_numpy(np.vstack(images).reshape(-1, spec.channels, size, size).copy())
    y = torch.tensor(labels)
    train_count = sum(len(batch) for batch in images[:-1])
    train = _checked(x[:train_count], y[:train_count], spec, paths[0])
    test = _checked(x[train_count:], y[train_count:], spec, paths[-1])
    return (*train, *test)


# --- the registry ----------------------------------------------------------------------------

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")  # fmt: skip
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")  # fmt: skip

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="fashion",
            torchvision_class="FashionMNIST",
            folder="FashionMNIST/raw",
            files=idx_files(),
            read=read_idx_splits,
            classes=FASHION_CLASSES,
            mirror_invariant=True,
            system_folders=(Path("/usr/share/datasets/fashion-mnist"),),
            install_hint="apt-get install dataset-fashion-mnist (into /usr/share/datasets/)",
        ),
        DatasetSpec(
            name="mnist",
            torchvision_class="MNIST",
            folder="MNIST/raw",
            files=idx_files(),
            read=read_idx_splits,
            classes=tuple("0123456789"),
        ),
        DatasetSpec(
            name="kmnist",  # Kuzushiji-MNIST: ten cursive hiragana
            torchvision_class="KMNIST",
            folder="KMNIST/raw",
            files=idx_files(),
            read=read_idx_splits,
            classes=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
        ),
        DatasetSpec(
            name="emnist",  # EMNIST balanced: 131,600 letters and digits in 47 classes
            torchvision_class="EMNIST",
            folder="EMNIST/raw",
            files=idx_files("emnist-balanced-", "train", "test"),
            read=read_idx_splits,
            classes=tuple("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghnqrt"),
            transpose=True,
            download_kwargs={"split": "balanced"},
        ),
        DatasetSpec(
            name="cifar10",
            torchvision_class="CIFAR10",
            folder="cifar-10-batches-py",
            files=(*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"),
            read=read_cifar_splits,
            classes=CIFAR10_CLASSES,
            mirror_invariant=True,
            channels=3,
            image_size=32,
        ),
    )
}


def dataset_spec(name: str) -> DatasetSpec:
    """The registered dataset `name`; raise one line listing the valid names."""
    if name not in DATASETS:
        raise SweeplabError(f"invalid config: dataset.name={name!r}: use one of {sorted(DATASETS)}")
    return DATASETS[name]


def _files_in(folder: Path, names: tuple[str, ...]) -> list[Path] | None:
    found = []
    for name in names:
        path = next((folder / n for n in (name, name + ".gz") if (folder / n).is_file()), None)
        if path is None:
            return None
        found.append(path)
    return found


def find_files(spec: DatasetSpec, root: Path, download: bool) -> list[Path]:
    """The dataset's files, offline first; downloaded only when `download`; else one line."""
    folders = [root / spec.folder, *spec.system_folders]
    for folder in folders:
        found = _files_in(folder, spec.files)
        if found is not None:
            return found
    if download:
        _download(spec, root)
        return find_files(spec, root, download=False)
    raise SweeplabError(
        f"{spec.torchvision_class} not found: get it one of three ways: (1) put its files "
        f"({', '.join(spec.files[:2])}, ...) in {root / spec.folder}/ or point dataset.root at "
        f"the folder above {spec.folder.split('/')[0]}/; (2) {spec.install_hint}; "
        "(3) add dataset.download=true (needs internet)"
    )


def _remove_if_empty(folder: Path) -> None:
    """Remove `folder` and its subfolders when no file is in them."""
    if not folder.is_dir() or any(p.is_file() for p in folder.rglob("*")):
        return
    for sub in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        sub.rmdir()
    folder.rmdir()


def _download(spec: DatasetSpec, root: Path) -> None:
    import torchvision  # only here: the offline path never needs it

    dataset_class = getattr(torchvision.datasets, spec.torchvision_class)
    made = [p for p in (root, *root.parents) if not p.exists()]  # what a failure must not leave
    try:
        for train in (True, False):
            dataset_class(root, train=train, download=True, **spec.download_kwargs)
    except (OSError, RuntimeError) as err:  # URLError is an OSError
        for folder in made:  # the folders this download made, if they hold nothing
            _remove_if_empty(folder)
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise SweeplabError(
            f"dataset.download=true could not download {spec.torchvision_class} ({reason}): "
            f"check the internet connection, or put the files in {root / spec.folder}/"
        ) from err
