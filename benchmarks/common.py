"""Shared by the benchmark scripts: the machine's description, tables on stdout and as CSV."""

from __future__ import annotations

import csv
import os
import platform
import sys
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
    columns = list(rows[0])
    print(f"\n{title}\n")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(_cell(row.get(column)) for column in columns) + " |")
    print()


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


def compose_cfg(overrides: list[str]):
    """The config `python run.py OVERRIDES` would compose (a DictConfig)."""
    from hydra import compose, initialize_config_dir  # after sys.path has the project
    from hydra.core.global_hydra import GlobalHydra

    from sweeplab.config import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        return compose("config", overrides=overrides)


def compose_run(overrides: list[str]):
    """The run config `python run.py OVERRIDES` would use, checked (a RunConfig)."""
    from sweeplab.config import check_config

    return check_config(compose_cfg(overrides))
