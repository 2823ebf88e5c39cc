"""What pruning and workers buy a search: one seeded search run seven ways.

    python benchmarks/search.py            # 24 trials of up to 8 epochs on 20,000 images
    python benchmarks/search.py --quick    # 4 trials of 2 epochs on 1,024 images
    python benchmarks/search.py --subset 0 # the full training set

The search is conf/hparams_search/fashion_optuna.yaml (TPE, seed 0, over lr, weight decay,
noise and dropout), through run.py: without pruning; with the median, successive-halving and
hyperband pruners, and successive halving from epoch 2; with the median pruner and two worker
commands of one torch thread each on one study; and with the median pruner in one command with
the joblib launcher (two jobs of one thread). For each: the epochs and training seconds of all
its runs, the wall time, the best val accuracy found, and how long until the search was within
0.3 points of its own final best (in training seconds and wall seconds). `--only` runs some.
Printed as a Markdown table and written as search.csv.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from common import ROOT, machine, print_table, write_csv

WITHIN = 0.003  # "within 0.3 points of its final best"
VARIANTS = {
    "no pruning": (["hydra.sweeper.pruner=none"], 1),
    "median pruner": ([], 1),
    "successive halving pruner": (["hydra.sweeper.pruner=successive_halving"], 1),
    "hyperband pruner": (["hydra.sweeper.pruner=hyperband"], 1),
    "successive halving, first rung at epoch 2": (
        ["hydra.sweeper.pruner=successive_halving", "+hydra.sweeper.pruner_args={min_resource:2}"],
        1),
    "median pruner, 2 worker commands x 1 thread": (["threads=1"], 2),
    "median pruner, 1 command, joblib 2 jobs x 1 thread": (
        ["hydra/launcher=joblib", "hydra.sweeper.n_jobs=2"], 1),
}  # fmt: skip


def run_search(sweep: Path, args: list[str], workers: int) -> float:
    """The search's command(s), started together; the wall seconds until the last ends."""
    command = [sys.executable, str(ROOT / "run.py"), "-m", "hparams_search=fashion_optuna",
               *args, f"hydra.sweep.dir={sweep}", "progress=false", "figures=false"]  # fmt: skip
    started = time.perf_counter()
    processes = [
        subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(workers)
    ]
    for process in processes:
        _, stderr = process.communicate()
        if process.returncode not in (0, 1):  # 1: a trial failed (listed by the sweep)
            raise SystemExit(f"search failed: {stderr.decode()[-2000:]}")
    return time.perf_counter() - started


def measure(sweep: Path, wall: float, started_at: datetime) -> dict[str, Any]:
    runs = []
    for path in sweep.glob("*/summary.json"):
        summary = json.loads(path.read_text())
        if summary.get("finished_at"):
            runs.append(summary)
    runs.sort(key=lambda s: s["finished_at"])
    finished = [r for r in runs if r["status"] == "completed"]
    best = max(r["best_val_accuracy"] for r in finished)
    spent, reached = 0.0, None
    for run in runs:  # in the order they ended
        spent += run.get("train_seconds") or 0.0
        close = run["status"] == "completed" and run["best_val_accuracy"] >= best - WITHIN
        if reached is None and close:
            at = datetime.fromisoformat(run["finished_at"]) - started_at
            reached = (spent, at.total_seconds())
    return {
        "trials": len(runs),
        "pruned": sum(r["status"] == "pruned" for r in runs),
        "epochs trained": sum(r.get("epochs_completed") or 0 for r in runs),
        "train s": spent,
        "wall s": wall,
        "best val acc": best,
        "train s to within 0.3": reached[0] if reached else None,
        "wall s to within 0.3": reached[1] if reached else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 trials of 2 epochs, 1,024 images")
    parser.add_argument("--subset", type=int, default=20000, help="training images (0: all)")
    parser.add_argument("--out", type=Path, help="folder for search.csv")
    parser.add_argument("--only", nargs="+", choices=list(VARIANTS), help="run these variants")
    args = parser.parse_args()
    trials, epochs, subset = (4, 2, 1024) if args.quick else (24, 8, args.subset)
    common = [f"hydra.sweeper.n_trials={trials}", f"epochs={epochs}"]
    common += [f"dataset.subset={subset}"] if subset else []
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        chosen = {name: VARIANTS[name] for name in args.only or VARIANTS}
        for number, (name, (extra, workers)) in enumerate(chosen.items()):
            sweep = Path(tmp) / f"search{number}"
            started_at = datetime.now().astimezone()
            wall = run_search(sweep, [*common, *extra], workers)
            row = {"search": name, **measure(sweep, wall, started_at)}
            rows.append(row)
            print(f"{name}: {row['trials']} trials ({row['pruned']} pruned), "
                  f"{row['train s']:.0f} s training, {wall:.0f} s wall, best val "
                  f"{row['best val acc']:.4f}", flush=True)  # fmt: skip
    base = rows[0]
    for row in rows:
        row["train s vs no pruning"] = f"{row['train s'] / base['train s']:.0%}"
        row["best vs no pruning (points)"] = (
            f"{100 * (row['best val acc'] - base['best val acc']):+.2f}"
        )
    title = (f"Search: {trials} trials of up to {epochs} epochs, {' '.join(common)}, "
             f"{machine()}")  # fmt: skip
    print_table(rows, title)
    write_csv(rows, "search", args.out)


if __name__ == "__main__":
    main()
