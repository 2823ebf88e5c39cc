"""Wall time of the flagship sweep (wd_vs_noise: 4 weight decays x 4 noise levels x 3 seeds
x 5 epochs = 48 runs) under Hydra's basic launcher and under the joblib launcher.

Each launcher gets a fresh sweep folder under multirun/benchmark_sweep/, so nothing is skipped
as already done. Per-run figures (data loading, training, peak memory) come from the runs'
summary.json files.

    python benchmarks/sweep.py                        # both launchers: about 40 minutes
    python benchmarks/sweep.py --launchers joblib     # one of them
    python benchmarks/sweep.py --quick                # 4 tiny runs per launcher
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from statistics import mean
from typing import Any

from common import ROOT, machine, print_table, write_csv

QUICK = [
    "regularization.weight_decay=0,1e-2",
    "regularization.noise_std=0,0.1",
    "seed=0",
    "epochs=1",
    "dataset.subset=1024",
    "figures=false",  # a run's PNGs cost as much as its epoch on 1,024 images
]
LAUNCHER_OVERRIDES = {"basic": [], "joblib": ["hydra/launcher=joblib"]}


def run_sweep(launcher: str, sweep_dir: Path, extra: list[str]) -> dict[str, Any]:
    """Run the flagship under `launcher` into a fresh folder; return its figures."""
    shutil.rmtree(sweep_dir, ignore_errors=True)
    command = [
        sys.executable,
        str(ROOT / "run.py"),
        "-m",
        "+experiment=wd_vs_noise",
        *LAUNCHER_OVERRIDES[launcher],
        f"hydra.sweep.dir={sweep_dir}",
        "progress=false",
        *extra,
    ]
    print("$", " ".join(command[1:]), flush=True)
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        print(result.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"the {launcher} sweep failed (exit {result.returncode})")
    summaries = [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/summary.json"))]
    completed = [s for s in summaries if s.get("status") == "completed"]
    return {
        "launcher": launcher,
        "runs": len(completed),
        "wall s": round(wall, 1),
        "wall min": round(wall / 60, 2),
        "s per run": round(wall / max(len(completed), 1), 1),
        "train s per run": round(mean(s["train_seconds"] for s in completed), 1),
        "data load s per run": round(mean(s["data_seconds"] for s in completed), 3),
        "peak RSS MB (max)": max(s["peak_rss_mb"] for s in completed),
        "mean test acc": round(mean(s["test_accuracy"] for s in completed), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--launchers", nargs="+", default=["basic", "joblib"])
    parser.add_argument("--quick", action="store_true", help="a 2 x 2 grid, 1 epoch, tiny data")
    parser.add_argument("--sweeps", type=Path, default=ROOT / "multirun" / "benchmark_sweep")
    parser.add_argument("--out", type=Path, help="CSV folder (default: benchmarks/results)")
    args = parser.parse_args()
    extra = QUICK if args.quick else []
    print(machine())
    rows = [run_sweep(name, args.sweeps / name, extra) for name in args.launchers]
    print_table(rows, f"Flagship sweep wall time ({machine()})")
    write_csv(rows, "sweep", args.out)


if __name__ == "__main__":
    main()
