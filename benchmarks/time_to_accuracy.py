"""The default run on every seed, where its seconds go, and time to 88 / 89 / 90 % FashionMNIST
test accuracy against a typical course pipeline, side by side on one machine.

1. Every seed: `python run.py seed=N` for each of `--seeds` (0-4), each a fresh process: test
   accuracy, training seconds, the run's own split of its time from summary.json (start-up,
   data, training, evaluation, figures) and the command's wall-clock.
2. Time to accuracy: our default and the course pipeline each in a fresh process, scored on the
   test split after every epoch (here only, to draw the curve); counted both as training seconds
   and as wall-clock from the process's start (imports and data included) to the end of the
   epoch, less the benchmark's own test scoring. The course pipeline: torchvision's
   FashionMNIST with per-sample PIL `Resize(32)`, `ToTensor` and `Normalize` in a `DataLoader`
   (batch 64, no workers), the classic tanh / average-pooling LeNet-5, Adam at 1e-3.

    python benchmarks/time_to_accuracy.py              # full data: about 8 minutes on 2 cores
    python benchmarks/time_to_accuracy.py epochs=5     # Hydra overrides for our side
    python benchmarks/time_to_accuracy.py --quick      # a tiny subset: checks the script runs
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from common import ROOT, compose_cfg, machine, print_table, write_csv

from sweeplab.runtime import seconds_since_process_start

THRESHOLDS = (0.88, 0.89, 0.90)
SPLIT = ("startup_seconds", "data_seconds", "train_seconds", "eval_seconds", "figures_seconds")
EPOCH = "EPOCH "  # a child's stdout line that carries one epoch's row as JSON
IMPORTED = time.perf_counter()  # where there is no /proc, a child's clock starts here


def since_start() -> float:
    """Wall seconds since this process started (interpreter included where Linux's /proc says;
    elsewhere since this script was imported, which leaves out the interpreter's start)."""
    seconds = seconds_since_process_start()
    return seconds if seconds is not None else time.perf_counter() - IMPORTED


def every_seed(seeds: list[int], overrides: list[str], folder: Path) -> list[dict[str, Any]]:
    """`python run.py seed=N` per seed: accuracy, training time and the run's time split."""
    rows = []
    for seed in seeds:
        run_dir = folder / f"seed{seed}"
        command = [sys.executable, "run.py", f"seed={seed}", f"hydra.run.dir={run_dir}"]
        started = time.perf_counter()
        subprocess.run([*command, "progress=false", *overrides], cwd=ROOT, check=True)
        wall = time.perf_counter() - started
        summary = json.loads((run_dir / "summary.json").read_text())
        row = {
            "seed": seed,
            "test acc": summary["test_accuracy"],
            "best val acc": summary["best_val_accuracy"],
            "params": summary["params"],
            **{name.replace("_seconds", " s"): summary[name] for name in SPLIT},
            "command wall s": round(wall, 2),
        }
        print(row, flush=True)
        rows.append(row)
    accuracies = [row["test acc"] for row in rows]
    rows.append(
        {
            "seed": "mean",
            "test acc": statistics.fmean(accuracies),
            "best val acc": statistics.fmean(row["best val acc"] for row in rows),
            **{
                key: round(statistics.fmean(row[key] for row in rows), 3)
                for key in rows[0]
                if key.endswith(" s")
            },
        }
    )
    rows.append({"seed": "min", "test acc": min(accuracies)})
    return rows


def ours(overrides: list[str]) -> None:
    """Child process: our default through the run's own `train_and_evaluate`, scoring the test
    split after each epoch from its per-epoch hook (a run itself never looks at test until the
    end)."""
    from sweeplab.epoch import evaluate
    from sweeplab.hooks import EpochEnd, RunHook
    from sweeplab.train import train_and_evaluate

    cfg = compose_cfg([*overrides, "figures=false", "progress=false"])

    class ScoreTest(RunHook):
        scoring = 0.0  # seconds spent here, left out of the wall clock

        def epoch_end(self, end: EpochEnd) -> None:
            wall = since_start() - self.scoring
            started = time.perf_counter()
            seconds = end.row("train")["seconds"]
            total = sum(row["seconds"] for row in end.history if row["split"] == "train")
            data = end.data
            test = evaluate(
                end.model, data.test_x, data.test_y, cfg.eval_batch_size, cfg.amp, cfg.tta
            )
            _emit("sweeplab default", end.epoch, seconds, total, wall, test.accuracy)
            self.scoring += time.perf_counter() - started

    with tempfile.TemporaryDirectory() as folder:
        train_and_evaluate(cfg, Path(folder), hooks=[ScoreTest()])


def course(epochs: int, subset: int | None) -> None:
    """Child process: the course pipeline; stops once every threshold is reached or after
    `epochs`."""
    with tempfile.TemporaryDirectory() as folder:
        _course_epochs(epochs, subset, Path(folder))


def _course_epochs(epochs: int, subset: int | None, folder: Path) -> None:
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
    total, scoring = 0.0, 0.0
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
        wall = since_start() - scoring
        started = time.perf_counter()
        model.eval()
        correct = 0
        with torch.no_grad():
            for images, labels in test_loader:
                correct += (model(images).argmax(1) == labels).sum().item()
        accuracy = correct / len(test)
        scoring += time.perf_counter() - started
        _emit("course pipeline", epoch, seconds, total, wall, accuracy)
        if accuracy >= max(THRESHOLDS):
            break


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


def _emit(
    pipeline: str, epoch: int, seconds: float, total: float, wall: float, accuracy: float
) -> None:
    """Print one epoch's row for the parent process."""
    row = {
        "pipeline": pipeline,
        "epoch": epoch,
        "train_s": round(seconds, 2),
        "cumulative_train_s": round(total, 2),
        "wall_s": round(wall, 2),
        "test_accuracy": round(accuracy, 4),
    }
    print(EPOCH + json.dumps(row), flush=True)


def curve(child: list[str]) -> list[dict[str, Any]]:
    """Run this script as a child process; its epoch rows."""
    command = [sys.executable, __file__, *child]
    result = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line.startswith(EPOCH)]
    rows = [json.loads(line.removeprefix(EPOCH)) for line in lines]
    for row in rows:
        print(row, flush=True)
    return rows


def time_to(rows: list[dict[str, Any]], threshold: float, column: str) -> float | None:
    """`column` (training or wall seconds) at the first epoch at or above `threshold`."""
    hit = next((r for r in rows if r["test_accuracy"] >= threshold), None)
    return hit[column] if hit else None


def summarise(curves: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    table = []
    for name, rows in curves.items():
        row: dict[str, Any] = {"pipeline": name}
        for threshold in THRESHOLDS:
            row[f"s to {threshold:.0%}"] = time_to(rows, threshold, "cumulative_train_s")
        row["wall s to 89%"] = time_to(rows, 0.89, "wall_s")
        row["epochs run"] = len(rows)
        row["s per epoch"] = round(rows[-1]["cumulative_train_s"] / len(rows), 2)
        row["final test acc"] = rows[-1]["test_accuracy"]
        table.append(row)
    ratio: dict[str, Any] = {"pipeline": "speed-up (course / ours)"}
    for key in [*(f"s to {threshold:.0%}" for threshold in THRESHOLDS), "wall s to 89%"]:
        course_s, ours_s = table[1][key], table[0][key]
        ratio[key] = f"{course_s / ours_s:.1f}x" if course_s and ours_s else "n/a"
    return [*table, ratio]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for our run")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--course-epochs", type=int, default=12, help="cap for the course run")
    parser.add_argument("--quick", action="store_true", help="2,048 images, 1 epoch each")
    parser.add_argument("--out", type=Path, help="CSV folder (default: benchmarks/results)")
    parser.add_argument("--child", choices=["ours", "course"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    overrides = list(args.overrides)
    subset = 2048 if args.quick else None
    if args.quick:
        overrides += [f"dataset.subset={subset}", "epochs=1"]
        args.seeds, args.course_epochs = args.seeds[:1], 1
    if args.child == "ours":
        return ours(overrides)
    if args.child == "course":
        return course(args.course_epochs, subset)

    print(machine())
    with tempfile.TemporaryDirectory() as folder:
        seeds = every_seed(args.seeds, overrides, Path(folder))
    print_table(seeds, f"The default on every seed ({machine()})")
    quick = ["--quick"] if args.quick else []
    curves = {
        "sweeplab default": curve(["--child", "ours", *quick, *args.overrides]),
        "course pipeline": curve(
            ["--child", "course", *quick, "--course-epochs", str(args.course_epochs)]
        ),
    }
    rows = curves["sweeplab default"] + curves["course pipeline"]
    print_table(rows, "Test accuracy after each epoch (training and wall seconds)")
    table = summarise(curves)
    print_table(table, f"Time to accuracy ({machine()})")
    write_csv(seeds, "time_to_accuracy_seeds", args.out)
    write_csv(rows, "time_to_accuracy_epochs", args.out)
    write_csv(table, "time_to_accuracy", args.out)


if __name__ == "__main__":
    main()
