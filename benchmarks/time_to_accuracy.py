"""Time to 88 / 89 / 90 % FashionMNIST test accuracy: sweeplab's default run against a typical
course pipeline, side by side in one process on the same machine.

The course pipeline: torchvision's FashionMNIST dataset with per-sample PIL `Resize(32)`,
`ToTensor` and `Normalize` in a `DataLoader` (batch 64, no workers), the classic tanh /
average-pooling LeNet-5, Adam at 1e-3. Ours: `python run.py`'s defaults through the function
run.py calls (`train_and_evaluate`). Both are scored on the test split after every epoch here
only, to draw the curve; the time counted is training time (evaluation excluded).

    python benchmarks/time_to_accuracy.py              # full data: about 3 minutes on 2 cores
    python benchmarks/time_to_accuracy.py epochs=4     # Hydra overrides for our side
    python benchmarks/time_to_accuracy.py --quick      # a tiny subset: checks the script runs
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from common import ROOT, compose_cfg, machine, print_table, write_csv

THRESHOLDS = (0.88, 0.89, 0.90)


def ours(overrides: list[str]) -> list[dict[str, Any]]:
    """Our default pipeline through the run's own `train_and_evaluate`, scoring the test split
    after each epoch from its per-epoch hook (a run itself never looks at test until the end)."""
    from sweeplab.epoch import evaluate
    from sweeplab.train import train_and_evaluate

    cfg = compose_cfg([*overrides, "figures=false"])
    rows: list[dict[str, Any]] = []

    def score_test(epoch: int, model, data, history: list[dict[str, Any]]) -> None:
        seconds = history[-2]["seconds"]  # this epoch's rows: train, then val
        total = sum(row["seconds"] for row in history if row["split"] == "train")
        test = evaluate(model, data.test_x, data.test_y, cfg.eval_batch_size, cfg.amp)
        rows.append(_row("sweeplab default", epoch, seconds, total, test.accuracy))
        print(f"ours   epoch {epoch}: {seconds:.1f} s, test {test.accuracy:.4f}", flush=True)

    with tempfile.TemporaryDirectory() as folder:
        train_and_evaluate(cfg, Path(folder), on_epoch=score_test)
    return rows


def course(epochs: int, subset: int | None, folder: Path) -> list[dict[str, Any]]:
    """The course pipeline; stops once every threshold is reached or after `epochs`."""
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    from sweeplab.models.lenet import LeNet5Classic

    _unpack_for_torchvision(folder)
    transform = transforms.Compose(
        [transforms.Resize(32), transforms.ToTensor(), transforms.Normalize((0.2860,), (0.3530,))]
    )
    train = datasets.FashionMNIST(folder, train=True, transform=transform)
    test = datasets.FashionMNIST(folder, train=False, transform=transform)
    if subset:
        train, test = Subset(train, range(subset)), Subset(test, range(subset))
    torch.manual_seed(0)
    train_loader = DataLoader(train, batch_size=64, shuffle=True)
    test_loader = DataLoader(test, batch_size=1000)
    model = LeNet5Classic()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    rows, total = [], 0.0
    for epoch in range(1, epochs + 1):
        model.train()
        started = time.perf_counter()
        for images, labels in train_loader:
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        seconds = time.perf_counter() - started
        total += seconds
        model.eval()
        correct = 0
        with torch.no_grad():
            for images, labels in test_loader:
                correct += (model(images).argmax(1) == labels).sum().item()
        accuracy = correct / len(test)
        rows.append(_row("course pipeline", epoch, seconds, total, accuracy))
        print(f"course epoch {epoch}: {seconds:.1f} s, test {accuracy:.4f}", flush=True)
        if accuracy >= max(THRESHOLDS):
            break
    return rows


def _unpack_for_torchvision(folder: Path) -> None:
    """torchvision reads uncompressed IDX files from <root>/FashionMNIST/raw/."""
    from sweeplab.datasets import DATASETS, find_files

    raw = folder / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for path in find_files(DATASETS["fashion"], ROOT / "data", download=False):
        target = raw / path.name.removesuffix(".gz")
        if path.suffix == ".gz":
            with gzip.open(path) as source, target.open("wb") as out:
                shutil.copyfileobj(source, out)
        else:
            shutil.copy(path, target)


def _row(pipeline: str, epoch: int, seconds: float, total: float, accuracy: float) -> dict:
    return {
        "pipeline": pipeline,
        "epoch": epoch,
        "train_s": round(seconds, 2),
        "cumulative_train_s": round(total, 2),
        "test_accuracy": round(accuracy, 4),
    }


def time_to(rows: list[dict[str, Any]], threshold: float) -> float | None:
    """Training seconds until the first epoch at or above `threshold` (None: never)."""
    hit = next((r for r in rows if r["test_accuracy"] >= threshold), None)
    return hit["cumulative_train_s"] if hit else None


def summarise(curves: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    table = []
    for name, rows in curves.items():
        row: dict[str, Any] = {"pipeline": name}
        for threshold in THRESHOLDS:
            row[f"s to {threshold:.0%}"] = time_to(rows, threshold)
        row["epochs run"] = len(rows)
        row["s per epoch"] = round(rows[-1]["cumulative_train_s"] / len(rows), 2)
        row["final test acc"] = rows[-1]["test_accuracy"]
        table.append(row)
    ratio: dict[str, Any] = {"pipeline": "speed-up (course / ours)"}
    for threshold in THRESHOLDS:
        key = f"s to {threshold:.0%}"
        course_s, ours_s = table[1][key], table[0][key]
        ratio[key] = f"{course_s / ours_s:.1f}x" if course_s and ours_s else "n/a"
    return [*table, ratio]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for our run")
    parser.add_argument("--course-epochs", type=int, default=12, help="cap for the course run")
    parser.add_argument("--quick", action="store_true", help="2,048 images, 1 epoch each")
    parser.add_argument("--out", type=Path, help="CSV folder (default: benchmarks/results)")
    args = parser.parse_args()
    overrides = list(args.overrides)
    subset = 2048 if args.quick else None
    if args.quick:
        overrides += [f"dataset.subset={subset}", "epochs=1"]
    print(machine())
    with tempfile.TemporaryDirectory() as folder:
        curves = {
            "sweeplab default": ours([*overrides, "progress=false"]),
            "course pipeline": course(
                1 if args.quick else args.course_epochs, subset, Path(folder)
            ),
        }
    rows = curves["sweeplab default"] + curves["course pipeline"]
    print_table(rows, "Test accuracy after each epoch (training seconds, evaluation excluded)")
    table = summarise(curves)
    print_table(table, f"Time to accuracy ({machine()})")
    write_csv(rows, "time_to_accuracy_epochs", args.out)
    write_csv(table, "time_to_accuracy", args.out)


if __name__ == "__main__":
    main()
