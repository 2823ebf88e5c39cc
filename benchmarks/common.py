"""Shared by the benchmark scripts: the machine's description, tables on stdout and as CSV."""

from __future__ import annotations

import csv
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
if str(ROOT) not in sys.path:  # run as `python benchmarks/<script>.py`
    sys.path.insert(0, str(ROOT))


def machine() -> str:
    """One line: CPU model, usable cores, torch version and device."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {cores} cores, torch {torch.__version__}, {gpu}"


def print_table(rows: list[dict[str, Any]], title: str) -> None:
    """A Markdown table on stdout (pasteable into the README)."""
    if not rows:
        return
    import pandas as pd  # only when printing: the scripts' own timings start without it

    columns = list(rows[0])
    cells = pd.DataFrame([{column: _cell(row.get(column)) for column in columns} for row in rows])
    print(f"\n{title}\n\n{cells.to_markdown(index=False, disable_numparse=True)}\n")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.1f}"
        return f"{value:.4f}" if abs(value) < 1 else f"{value:.3g}"
    return str(value)


def write_csv(rows: list[dict[str, Any]], name: str, out: Path | None = None) -> Path:
    """Write the rows as `<out or benchmarks/results>/<name>.csv`; return the path."""
    folder = out or RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.csv"
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {path}")
    return path


def compose_cfg(overrides: list[str], with_hydra: bool = False):
    """The config `python run.py OVERRIDES` would compose (a DictConfig); `with_hydra` keeps
    its `hydra` node (e.g. `hydra.runtime.choices.model`: the preset chosen)."""
    from hydra import compose, initialize_config_dir  # after sys.path has the project
    from hydra.core.global_hydra import GlobalHydra

    from sweeplab.config import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        return compose("config", overrides=overrides, return_hydra_config=with_hydra)


def compose_run(overrides: list[str]):
    """The run config `python run.py OVERRIDES` would use, checked (a RunConfig)."""
    from sweeplab.config import check_config

    return check_config(compose_cfg(overrides))


@dataclass
class TrainingSetup:
    """A model as a run builds it, its optimizer, and random batches at its native input size."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    x: torch.Tensor
    y: torch.Tensor
    input_size: int


def training_setup(model: str, batch: int, steps: int) -> TrainingSetup:
    """`model` (a conf/model/ preset) built and laid out in memory as a run does, AdamW at a
    constant learning rate, and `batch * steps` random images with labels (seeded: 0)."""
    from sweeplab.models import build_model
    from sweeplab.runtime import memory_format

    torch.manual_seed(0)
    run = compose_run([f"model={model}"])  # conf/model/<model>.yaml at the model's native size
    size = run.input_size
    device = torch.device("cpu")
    net = build_model(run.model, 1, size, 10)
    net = net.to(device, memory_format=memory_format(net, device))
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    x = torch.randn(batch * steps, 1, size, size)
    y = torch.randint(0, 10, (batch * steps,))
    return TrainingSetup(net, optimizer, scheduler, x, y, size)
