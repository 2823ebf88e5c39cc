"""Training and evaluation images/s of every registered model at its native input size, by
batch size, torch threads and torch.compile, through the run's own `train_epoch` / `evaluate`
on in-memory tensors.

Each measurement runs a warm-up pass first (and, with compile, reports the compile time), so
the figures are steady-state speed. Models use the memory layout a run gives them
(channels-last on the CPU unless they have batch norm).

    python benchmarks/throughput.py                       # every model: about 7 minutes
    python benchmarks/throughput.py --models lenet5 mlp --batches 256 --threads 2
    python benchmarks/throughput.py --quick               # checks the script runs
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch
from common import machine, print_table, training_setup, write_csv

from sweeplab.epoch import EpochResult, TrainSettings, evaluate, train_epoch
from sweeplab.models import MODELS

# AlexNet at 227x227 runs a few images per second here: small batches, few steps.
SLOW = {"alexnet": {"batches": (64,), "steps": 3}}


def measure(name: str, batch: int, threads: int, compiled: bool, steps: int) -> dict[str, Any]:
    """Steady-state train and eval images/s of one model at one batch size."""
    torch.set_num_threads(threads)
    setup = training_setup(name, batch, steps)
    model, x, y = setup.model, setup.x, setup.y

    def train(images: torch.Tensor, labels: torch.Tensor) -> EpochResult:
        settings = TrainSettings(batch, progress=False)
        return train_epoch(model, setup.optimizer, setup.scheduler, images, labels, settings)

    compile_seconds = None
    if compiled:
        model.compile()
        started = time.perf_counter()
        train(x[:batch], y[:batch])
        evaluate(model, x[:batch], y[:batch], batch)
        compile_seconds = time.perf_counter() - started
    train(x[:batch], y[:batch])  # warm-up
    trained = train(x, y)
    evaluate(model, x[:batch], y[:batch], batch)
    evaluated = evaluate(model, x, y, batch)
    size = setup.input_size
    return {
        "model": name,
        "input": f"{size}x{size}",
        "batch": batch,
        "threads": threads,
        "compile": compiled,
        "train img/s": round(trained.images_per_second),
        "eval img/s": round(evaluated.images_per_second),
        "compile s": round(compile_seconds, 1) if compile_seconds is not None else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--models", nargs="+", help="models or presets of conf/model/ (default: every model)"
    )
    parser.add_argument("--batches", nargs="+", type=int, default=[64, 256, 1024])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument(
        "--compile-batches", nargs="*", type=int, default=[256], help="batches also compiled"
    )
    parser.add_argument("--steps", type=int, default=20, help="timed batches per measurement")
    parser.add_argument(
        "--quick", action="store_true", help="two small models (or --models), 3 steps"
    )
    parser.add_argument("--out", type=Path, help="CSV folder (default: benchmarks/results)")
    args = parser.parse_args()
    if args.quick:
        args.models, args.batches, args.threads = args.models or ["lenet5", "mlp"], [64], [1]
        args.compile_batches, args.steps = [64], 3
    args.models = args.models or sorted(MODELS)
    print(machine())
    rows = []
    for name in args.models:
        slow = SLOW.get(name, {})
        for batch in slow.get("batches", args.batches):
            for threads in args.threads:
                compiles = (False, True) if batch in args.compile_batches else (False,)
                for compiled in compiles:
                    steps = slow.get("steps", args.steps)
                    row = measure(name, batch, threads, compiled, steps)
                    print(row, flush=True)
                    rows.append(row)
    print_table(rows, f"Images per second ({machine()})")
    write_csv(rows, "throughput", args.out)


if __name__ == "__main__":
    main()
