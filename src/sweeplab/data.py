"""Datasets as in-memory tensors: find the IDX files offline first, parse them, split, normalise.

Each split is loaded once, padded or resized once and normalised once with training-set
statistics; training then batches by index. The validation split is carved from the training
images with a fixed seed; the official test split is never touched for choices.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from sweeplab.config import DatasetConfig, Resize
from sweeplab.errors import SweeplabError

DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension


@dataclass(frozen=True)
class DatasetInfo:
    folder: str  # torchvision's folder name under the root
    classes: tuple[str, ...]


DATASETS = {
    "fashion": DatasetInfo(
        "FashionMNIST",
        (
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
    ),
    "mnist": DatasetInfo("MNIST", tuple(str(digit) for digit in range(10))),
}


@dataclass
class Splits:
    """Normalised NCHW float tensors and integer labels for train, val and test."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]
    mean: float  # of the training split, in pixel units (0..1), after padding/resizing
    std: float
    source: str  # the folder the IDX files came from

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """Undo the normalisation (for showing images), on the CPU."""
        return x.cpu() * self.std + self.mean


def _file_in(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def candidate_folders(cfg: DatasetConfig) -> list[Path]:
    """Folders searched for the four IDX files, in order."""
    info = DATASETS[cfg.name]
    folders = [Path(cfg.root) / info.folder / "raw", Path(cfg.root) / info.folder]
    if cfg.name == "fashion":
        folders.append(DEBIAN_FASHION_DIR)
    return folders


def find_idx_files(cfg: DatasetConfig) -> dict[str, Path]:
    """Return the four IDX files, downloading only when `download=true`; else raise."""
    for folder in candidate_folders(cfg):
        files = {key: _file_in(folder, stem) for key, stem in IDX_FILES.items()}
        if all(files.values()):
            return files  # type: ignore[return-value]
    info = DATASETS[cfg.name]
    if cfg.download:
        _download(cfg)
        return find_idx_files(replace(cfg, download=False))
    debian = (
        f"(2) apt-get install dataset-fashion-mnist (puts them in {DEBIAN_FASHION_DIR}/)"
        if cfg.name == "fashion"
        else "(2) copy them from another machine into that folder"
    )
    raise SweeplabError(
        f"{info.folder} not found: get it one of three ways: (1) put the four IDX files "
        f"(train-images-idx3-ubyte[.gz], ...) in {Path(cfg.root) / info.folder / 'raw'}/ or point "
        f"dataset.root at their parent; {debian}; (3) add dataset.download=true (needs internet)"
    )


def _download(cfg: DatasetConfig) -> None:
    import torchvision  # only here: the offline path never needs it

    dataset_class = getattr(torchvision.datasets, DATASETS[cfg.name].folder)
    for train in (True, False):
        dataset_class(cfg.root, train=train, download=True)


def read_idx(path: Path, magic: int) -> torch.Tensor:
    """Parse one IDX file (optionally gzipped) into a uint8 tensor; raise naming a bad file."""
    fix = "delete it and get it again (see dataset.root, the Debian package, dataset.download)"
    try:
        if path.suffix == ".gz":
            with gzip.open(path) as file:
                raw = file.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise SweeplabError(f"corrupt or truncated IDX file {path} ({err}): {fix}") from err
    if len(raw) < 8 or int.from_bytes(raw[:4], "big") != magic:
        raise SweeplabError(f"{path} is not an IDX file of the expected kind: {fix}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + int(torch.tensor(shape).prod())
    if len(raw) != expected:
        raise SweeplabError(
            f"truncated or corrupt IDX file {path}: {len(raw)} bytes, its header promises "
            f"{expected}: {fix}"
        )
    return torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8).reshape(shape)


def _read_split(images: Path, labels: Path) -> tuple[torch.Tensor, torch.Tensor]:
    x = read_idx(images, IDX_IMAGES_MAGIC)
    y = read_idx(labels, IDX_LABELS_MAGIC)
    if x.shape[0] != y.shape[0] or tuple(x.shape[1:]) != (28, 28) or int(y.max()) > 9:
        raise SweeplabError(
            f"{images} holds {tuple(x.shape)} images for {y.shape[0]} labels in {labels}; "
            "expected N 28x28 images and N labels 0..9: get the files again"
        )
    return x, y.long()


def _to_size(x: torch.Tensor, size: int, resize: Resize) -> torch.Tensor:
    """uint8 N x 28 x 28 -> float N x 1 x size x size in pixel units (0..1)."""
    x = x.unsqueeze(1).float().div_(255)
    if size == 28:
        return x
    if resize == Resize.pad:
        border = (size - 28) // 2
        return F.pad(x, (border, border, border, border))
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def load_splits(
    cfg: DatasetConfig,
    input_size: int = 28,
    resize: Resize = Resize.pad,
    stats: tuple[float, float] | None = None,
) -> Splits:
    """Load train / val / test as normalised tensors (stats: reuse a checkpoint's mean and std)."""
    files = find_idx_files(cfg)
    train_x, train_y = _read_split(files["train_images"], files["train_labels"])
    test_x, test_y = _read_split(files["test_images"], files["test_labels"])
    if cfg.val_size >= len(train_x):
        raise SweeplabError(
            f"invalid config: dataset.val_size={cfg.val_size}: the training set has only "
            f"{len(train_x)} images; use a smaller dataset.val_size"
        )

    order = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(cfg.split_seed))
    val_idx, train_idx = order[: cfg.val_size], order[cfg.val_size :]
    if cfg.subset is not None:
        train_idx, val_idx = train_idx[: cfg.subset], val_idx[: cfg.subset]
        test_x, test_y = test_x[: cfg.subset], test_y[: cfg.subset]

    train = _to_size(train_x[train_idx], input_size, resize)
    if stats is None:
        stats = (train.mean().item(), train.std().item())
    mean, std = stats

    def normalise(x: torch.Tensor) -> torch.Tensor:
        return x.sub_(mean).div_(std)

    return Splits(
        train_x=normalise(train),
        train_y=train_y[train_idx],
        val_x=normalise(_to_size(train_x[val_idx], input_size, resize)),
        val_y=train_y[val_idx],
        test_x=normalise(_to_size(test_x, input_size, resize)),
        test_y=test_y,
        classes=DATASETS[cfg.name].classes,
        mean=mean,
        std=std,
        source=str(files["train_images"].parent),
    )
