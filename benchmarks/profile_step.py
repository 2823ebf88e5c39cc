"""Where a training step's time goes: torch's profiler over `train_epoch` on random batches,
the operators that took the most CPU time per step, each with the shapes it ran on.

The model is built from its conf/model/ preset and laid out in memory as a run does (as in
throughput.py); one epoch warms up, one is timed without the profiler (images/s), one is
profiled (the profiler slows the step down, so read its table as shares, not speeds).

    python benchmarks/profile_step.py                    # the default's model, batch 256, 2 threads
    python benchmarks/profile_step.py --model lenet5_classic --threads 1
    python benchmarks/profile_step.py --quick            # checks the script runs
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from common import compose_cfg, machine, print_table, training_setup, write_csv
from torch.profiler import ProfilerActivity, profile

from sweeplab.epoch import TrainSettings, train_epoch


def profile_steps(model: str, batch: int, threads: int, steps: int, top: int) -> dict[str, Any]:
    """Images/s of a plain pass, and the `top` operators of a profiled one by CPU time."""
    torch.set_num_threads(threads)
    setup = training_setup(model, batch, steps)

    def train() -> float:
        settings = TrainSettings(batch, progress=False)
        result = train_epoch(
            setup.model, setup.optimizer, setup.scheduler, setup.x, setup.y, settings
        )
        return result.images_per_second

    train()  # warm-up: oneDNN picks its kernels, the allocator fills
    speed = train()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as profiler:
        train()
    events = profiler.key_averages(group_by_input_shape=True)
    total = sum(event.self_cpu_time_total for event in events)
    rows = [
        {
            "op": event.key,
            "input shapes": _shapes(event.input_shapes),
            "calls per step": f"{event.count / steps:g}",
            "ms per step": f"{event.self_cpu_time_total / steps / 1000:.2f}",
            "% of step": f"{100 * event.self_cpu_time_total / total:.1f}",
        }
        for event in sorted(events, key=lambda event: -event.self_cpu_time_total)[:top]
    ]
    return {"images_per_second": speed, "profiled_ms_per_step": total / steps / 1000, "rows": rows}


def _shapes(shapes: list[Any]) -> str:
    """The tensor arguments' shapes, e.g. `256x6x14x14, 6` (non-tensor arguments left out)."""
    tensors = [shape for shape in shapes if isinstance(shape, list) and shape]
    return ", ".join("x".join(str(side) for side in shape) for shape in tensors) or "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="a preset of conf/model/ (default: the default run's)")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20, help="batches per pass")
    parser.add_argument("--top", type=int, default=15, help="operators to list")
    parser.add_argument("--quick", action="store_true", help="batch 32, 2 steps")
    parser.add_argument("--out", type=Path, help="CSV folder (default: benchmarks/results)")
    args = parser.parse_args()
    if args.quick:
        args.batch, args.steps = 32, 2
    model = args.model or compose_cfg([], with_hydra=True).hydra.runtime.choices.model
    print(machine())
    result = profile_steps(model, args.batch, args.threads, args.steps, args.top)
    title = (
        f"Training step of {model}, batch {args.batch}, {args.threads} threads: "
        f"{result['images_per_second']:,.0f} images/s without the profiler, "
        f"{result['profiled_ms_per_step']:.1f} ms of operator time per step with it "
        f"({machine()})"
    )
    print_table(result["rows"], title)
    write_csv(result["rows"], "profile_step", args.out)


if __name__ == "__main__":
    main()
