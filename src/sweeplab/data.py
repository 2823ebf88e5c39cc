"""Datasets as in-memory tensors: find the IDX files offline first, parse them, split, normalise.

Each split is loaded once, padded or resized once and normalised once with training-set
statistics; training then batches by index. The validation split is carved from the training
images with a fixed seed; the official test split is never touched for choices.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import math
import os
import tempfile
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from sweeplab.config import DatasetConfig, Resize
from sweeplab.errors import SweeplabError

log = logging.getLogger(__name__)

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


# Above this many bytes of float images (all splits) images stay 28x28 uint8 in memory and are
# padded / resized per batch (AlexNet's 227x227 would need 14 GB); 32x32 needs 0.29 GB.
MAX_EAGER_BYTES = 2 * 1024**3


class LazyImages:
    """28x28 uint8 images that are padded or resized and normalised per batch when indexed.

    Stands in for a float NCHW tensor where the trainer only indexes, slices and asks the
    length and device; each batch equals the matching rows of the eager tensor.
    """

    def __init__(
        self, raw: torch.Tensor, size: int, resize: Resize, mean: float, std: float
    ) -> None:
        self.raw, self.size, self.resize, self.mean, self.std = raw, size, resize, mean, std

    def __len__(self) -> int:
        return len(self.raw)

    def __getitem__(self, index: torch.Tensor | slice) -> torch.Tensor:
        return _to_size(self.raw[index], self.size, self.resize).sub_(self.mean).div_(self.std)

    @property
    def device(self) -> torch.device:
        return self.raw.device

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.raw), 1, self.size, self.size)

    def to(self, device: torch.device | str) -> LazyImages:
        return LazyImages(self.raw.to(device), self.size, self.resize, self.mean, self.std)


Images = torch.Tensor | LazyImages


@dataclass
class Splits:
    """Normalised NCHW float images (tensors, or LazyImages for large sizes) and labels."""

    train_x: Images
    train_y: torch.Tensor
    val_x: Images
    val_y: torch.Tensor
    test_x: Images
    test_y: torch.Tensor
    classes: tuple[str, ...]
    mean: float  # of the training split, in pixel units (0..1), after padding/resizing
    std: float
    source: str  # the folder the IDX files came from
    load_seconds: float = float("nan")  # reading, splitting, normalising, moving to the device

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:  # a batch, never LazyImages
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


def _read_all(files: dict[str, Path]) -> tuple[torch.Tensor, ...]:
    train_x, train_y = _read_split(files["train_images"], files["train_labels"])
    test_x, test_y = _read_split(files["test_images"], files["test_labels"])
    return train_x, train_y, test_x, test_y


def cache_path(files: dict[str, Path], cache_dir: Path) -> Path:
    """The cache file for these IDX files: named by their paths, sizes and modification times."""
    key = hashlib.sha256()
    for name in sorted(files):
        stat = files[name].stat()
        key.update(f"{files[name].resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return cache_dir / f"idx-{key.hexdigest()[:16]}.pt"


def read_cached(files: dict[str, Path], cache_dir: Path) -> tuple[torch.Tensor, ...]:
    """The four IDX tensors, from a tensor file written on first use (~0.05 s instead of ~0.6 s).

    Parallel jobs may write the cache at once: each writes its own temporary file and renames
    it into place. A cache that cannot be written or read is skipped (and rebuilt when bad).
    """
    path = cache_path(files, cache_dir)
    if path.is_file():
        try:
            cached = torch.load(path, weights_only=True)
            return cached["train_x"], cached["train_y"], cached["test_x"], cached["test_y"]
        except Exception as err:  # a torn or foreign file: parse again and rewrite it
            log.warning("ignoring unreadable data cache %s (%s)", path, err)
    tensors = _read_all(files)
    tmp = None
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=f".{path.name}.")
        with os.fdopen(fd, "wb") as file:
            names = ("train_x", "train_y", "test_x", "test_y")
            torch.save(dict(zip(names, tensors, strict=True)), file)
        os.chmod(tmp, 0o644)  # mkstemp makes it private
        os.replace(tmp, path)
    except OSError as err:
        log.info("data cache not written (%s); the IDX files are parsed every run", err)
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)  # a half-written cache must not stay behind
    return tensors


def _to_size(x: torch.Tensor, size: int, resize: Resize) -> torch.Tensor:
    """uint8 N x 28 x 28 -> float N x 1 x size x size in pixel units (0..1)."""
    x = x.unsqueeze(1).float().div_(255)
    if size == 28:
        return x
    if resize == Resize.pad:
        border = (size - 28) // 2
        return F.pad(x, (border, border, border, border))
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def _pixel_stats(raw: torch.Tensor, size: int, resize: Resize) -> tuple[float, float]:
    """Mean and std of the images at `size`, in chunks so that large sizes fit in memory."""
    total = total_sq = 0.0
    count = 0
    for start in range(0, len(raw), 2048):
        chunk = _to_size(raw[start : start + 2048], size, resize).double()
        total += chunk.sum().item()
        total_sq += chunk.square().sum().item()
        count += chunk.numel()
    mean = total / count
    return mean, math.sqrt(max(total_sq / count - mean**2, 0.0) * count / max(count - 1, 1))


def load_splits(
    cfg: DatasetConfig,
    input_size: int = 28,
    resize: Resize = Resize.pad,
    stats: tuple[float, float] | None = None,
) -> Splits:
    """Load train / val / test as normalised tensors (stats: reuse a checkpoint's mean and std)."""
    files = find_idx_files(cfg)
    train_x, train_y, test_x, test_y = read_cached(files, Path(cfg.root) / "cache")
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

    if stats is None:
        stats = _pixel_stats(train_x[train_idx], input_size, resize)
    mean, std = stats
    eager = (len(train_x) + len(test_x)) * input_size**2 * 4 <= MAX_EAGER_BYTES

    def images(raw: torch.Tensor) -> Images:
        if eager:
            return _to_size(raw, input_size, resize).sub_(mean).div_(std)
        return LazyImages(raw, input_size, resize, mean, std)

    return Splits(
        train_x=images(train_x[train_idx]),
        train_y=train_y[train_idx],
        val_x=images(train_x[val_idx]),
        val_y=train_y[val_idx],
        test_x=images(test_x),
        test_y=test_y,
        classes=DATASETS[cfg.name].classes,
        mean=mean,
        std=std,
        source=str(files["train_images"].parent),
    )
