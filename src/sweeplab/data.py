"""Datasets as in-memory tensors: read the files once (cached), split, pad or resize, normalise.

Each split is loaded once, padded or resized once and normalised once with training-set
statistics; training then batches by index. The validation split is carved from the training
images with a fixed seed; the official test split is never touched for choices. What a
dataset is (files, channels, size, classes) comes from its entry in `datasets.py`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from sweeplab.config import DatasetConfig, Resize
from sweeplab.datasets import DatasetSpec, RawSplits, dataset_spec, find_files
from sweeplab.errors import SweeplabError
from sweeplab.provenance import fingerprint_files

log = logging.getLogger(__name__)

# Above this many bytes of float images (all splits) images stay uint8 at their own size in
# memory and are padded / resized per batch (AlexNet's 227x227 would need 14 GB of FashionMNIST);
# 32x32 needs 0.29 GB.
MAX_EAGER_BYTES = 2 * 1024**3
CACHE_VERSION = "2"  # bump when the cached tensors change layout (2: N x C x H x W)


def _to_size(x: torch.Tensor, size: int, resize: Resize) -> torch.Tensor:
    """uint8 N x C x h x w -> float N x C x size x size in pixel units (0..1)."""
    x = x.float().div_(255)
    if x.shape[-1] == size:
        return x
    if resize == Resize.pad:
        border = (size - x.shape[-1]) // 2
        return F.pad(x, (border, border, border, border))
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


class LazyImages:
    """uint8 images that are padded or resized and normalised per batch when indexed.

    Stands in for a float NCHW tensor where the training loop only indexes, slices and asks
    the length and device; each batch equals the matching rows of the eager tensor.
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
        return (len(self.raw), self.raw.shape[1], self.size, self.size)

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
    mean: float  # of the training split over all pixels and channels, in pixel units (0..1)
    std: float
    source: str  # the folder the files came from
    load_seconds: float = float("nan")  # reading, splitting, normalising, moving to the device

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:  # a batch, never LazyImages
        """Undo the normalisation (for showing images), on the CPU."""
        return x.cpu() * self.std + self.mean

    def to(self, device: torch.device) -> Splits:
        """The same splits on `device`."""
        for name in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y"):
            setattr(self, name, getattr(self, name).to(device))
        return self


def cache_path(files: list[Path], cache_dir: Path) -> Path:
    """The cache file for these files: named by their paths, sizes and modification times."""
    key = hashlib.sha256(CACHE_VERSION.encode())
    for path in files:
        stat = path.stat()
        key.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return cache_dir / f"raw-{key.hexdigest()[:16]}.pt"


def cache_dir(root: Path, files: list[Path]) -> Path:
    """`<dataset.root>/cache` for files under dataset.root; for files found elsewhere (a
    read-only system folder), the user's cache folder: dataset.root is never created."""
    if files[0].resolve().is_relative_to(root.resolve()):
        return root / "cache"
    user_cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(user_cache) / "sweeplab"


def read_cached(files: list[Path], spec: DatasetSpec, cache_dir: Path) -> RawSplits:
    """The raw tensors, from a tensor file written on first use (~0.05 s instead of ~0.6 s).

    Parallel jobs may write the cache at once: each writes its own temporary file and renames
    it into place. A cache that cannot be written or read is skipped (and rebuilt when bad).
    """
    names = ("train_x", "train_y", "test_x", "test_y")
    path = cache_path(files, cache_dir)
    if path.is_file():
        try:
            cached = torch.load(path, weights_only=True)
            return tuple(cached[name] for name in names)  # type: ignore[return-value]
        except Exception as err:  # a torn or foreign file: parse again and rewrite it
            log.warning("ignoring unreadable data cache %s (%s)", path, err)
    tensors = spec.read(files, spec)
    tmp = None
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=f".{path.name}.")
        with os.fdopen(fd, "wb") as file:
            torch.save(dict(zip(names, tensors, strict=True)), file)
        os.chmod(tmp, 0o644)  # mkstemp makes it private
        os.replace(tmp, path)
    except OSError as err:
        log.info("data cache not written (%s); the files are parsed every run", err)
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)  # a half-written cache must not stay behind
    return tensors


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


def data_fingerprint(cfg: DatasetConfig) -> str:
    """The SHA-256 fingerprint of the files this dataset config reads (cached beside the
    tensor cache, so only the first run pays for reading them)."""
    files = find_files(dataset_spec(cfg.name), Path(cfg.root), cfg.download)
    return fingerprint_files(files, cache_dir(Path(cfg.root), files))


def load_splits(
    cfg: DatasetConfig,
    input_size: int,
    resize: Resize,
    stats: tuple[float, float] | None = None,
) -> Splits:
    """Load train / val / test as normalised tensors (stats: reuse a checkpoint's mean and std)."""
    spec = dataset_spec(cfg.name)
    files = find_files(spec, Path(cfg.root), cfg.download)
    train_x, train_y, test_x, test_y = read_cached(files, spec, cache_dir(Path(cfg.root), files))
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
    values = (len(train_x) + len(test_x)) * spec.channels * input_size**2
    eager = values * 4 <= MAX_EAGER_BYTES

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
        classes=spec.classes,
        mean=mean,
        std=std,
        source=str(files[0].parent),
    )
