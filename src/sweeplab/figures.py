"""A run's figures: learning curves, sample predictions, confusion matrix (PNG files)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.figure import Figure  # not pyplot: no global figure state, no display needed
from matplotlib.ticker import MaxNLocator

from sweeplab.data import Splits
from sweeplab.run_format import CONFUSION_MATRIX, LEARNING_CURVES, METRICS, TEST_SAMPLES

PREDICTIONS_PER_ROW = 5  # mode=predict predict.n=100 draws 20 rows, not a 22,000-pixel strip


def learning_curves(metrics_csv: Path, out: Path) -> Figure:
    """Loss and accuracy per epoch, train against val, from metrics.csv."""
    metrics = pd.read_csv(metrics_csv)
    metrics = metrics[metrics["split"].isin(["train", "val"])].copy()
    metrics["accuracy (%)"] = 100 * metrics["accuracy"]  # in percent, as the console prints it
    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2)
    epochs = sorted(metrics["epoch"].unique())
    # Loss on a linear axis: over a few epochs a log axis has one labelled tick.
    for ax, column in zip(axes, ("loss", "accuracy (%)"), strict=True):
        sns.lineplot(data=metrics, x="epoch", y=column, hue="split", marker="o", ax=ax)
        ax.set_title(column)
        ax.grid(alpha=0.3)
        if len(epochs) <= 20:  # one tick per epoch (a 1-epoch run would get 0.96, 0.98, ...)
            ax.set_xticks(epochs)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    return fig


def sample_predictions(
    images: torch.Tensor,
    labels: torch.Tensor,
    predicted: torch.Tensor,
    classes: tuple[str, ...],
    out: Path,
) -> Figure:
    """Test images (C x H x W, pixel units) with true and predicted labels (wrong ones in red);
    one-channel images in grayscale."""
    count = len(images)
    columns = min(count, PREDICTIONS_PER_ROW)
    rows = math.ceil(count / columns)
    fig = Figure(figsize=(2.2 * columns, 2.7 * rows))
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[count:]:
        ax.set_visible(False)
    for ax, image, label, guess in zip(axes, images, labels, predicted, strict=False):
        pixels = image.clamp(0, 1).permute(1, 2, 0).numpy()  # H x W x C, as imshow wants
        ax.imshow(pixels.squeeze(2) if pixels.shape[2] == 1 else pixels, cmap="gray")
        ax.set_title(
            f"true: {classes[label]}\npred: {classes[guess]}",
            fontsize=9,
            color="black" if label == guess else "red",
        )
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    return fig


def confusion_matrix(
    labels: torch.Tensor, predicted: torch.Tensor, classes: tuple[str, ...]
) -> np.ndarray:
    """Counts: rows are true classes, columns predicted ones."""
    n = len(classes)
    flat = labels.long() * n + predicted.long()
    return torch.bincount(flat, minlength=n * n).reshape(n, n).numpy()


def plot_confusion_matrix(matrix: np.ndarray, classes: tuple[str, ...], out: Path) -> Figure:
    """An annotated heatmap of the confusion matrix with class names."""
    fig = Figure(figsize=(8, 6.5))
    ax = fig.subplots()
    sns.heatmap(
        matrix,
        annot=True,
        fmt="d",
        cmap="Blues",
        xticklabels=classes,
        yticklabels=classes,
        cbar=False,
        ax=ax,
    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"test confusion matrix ({int(matrix.sum())} images)")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    return fig


def draw_run_figures(run_dir: Path, data: Splits, test_predictions: torch.Tensor) -> None:
    """A training run's three figures, into its folder."""
    learning_curves(run_dir / METRICS, run_dir / LEARNING_CURVES)
    images, labels = data.to_pixels(data.test_x[:5]), data.test_y[:5].cpu()
    sample_predictions(images, labels, test_predictions[:5], data.classes, run_dir / TEST_SAMPLES)
    matrix = confusion_matrix(data.test_y.cpu(), test_predictions, data.classes)
    plot_confusion_matrix(matrix, data.classes, run_dir / CONFUSION_MATRIX)
