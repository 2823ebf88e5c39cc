"""What pruning and workers buy a search: one seeded search run seven ways.

    python benchmarks/search.py            # 24 trials of up to 8 epochs on 20,000 images
    python benchmarks/search.py --quick    # 4 trials of 2 epochs on 1,024 images
    python benchmarks/search.py --subset 0 # the full training set
    python benchmarks/search.py --seeds 0 1 2 --only "no pruning" "successive halving pruner"

The search is conf/hparams_search/fashion_optuna.yaml (TPE, seed 0, over lr, weight decay,
noise and dropout), through run.py: without pruning; with the median, successive-halving and
hyperband pruners, and successive halving from epoch 2; with the median pruner and two worker
commands of one torch thread each on one study; and with the median pruner in one command with
the joblib launcher (two jobs of one thread). A pruned search is given twice the trials
(`--pruned-trials`): its first 24 are the unpruned search's count (TPE's n-th trial does not
depend on how many follow), and the rest show what its savings buy.

For each: the epochs and training seconds of all its runs, the wall time, the best val accuracy
found, and how long until the search was within 0.3 points of its own final best. Against the
unpruned search of the same sampler seed: how many training seconds it took to find a best
within 0.3 points of the unpruned best, as a share of the unpruned search's training seconds
(target: at most half), and its first 24 trials' share of the seconds and best. `--seeds`
repeats everything per TPE seed and adds the means, as one seed's search is one draw; `--only`
runs some variants. Printed as a Markdown table and written as search.csv.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from common import ROOT, machine, print_table, write_csv
from hydra_plugins.sweeplab_optuna_sweeper.trial import ENV_TRIAL
from omegaconf import OmegaConf

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


def finished_runs(sweep: Path) -> list[dict[str, Any]]:
    """The sweep's finished runs' summaries with their trial numbers, in the order they ended."""
    runs = []
    for path in sweep.glob("*/summary.json"):
        run = json.loads(path.read_text())
        job = OmegaConf.load(path.parent / ".hydra" / "hydra.yaml").hydra.job  # the sweeper's
        run["trial"] = int(job.env_set[ENV_TRIAL])  # record of the trial, in the job's env
        runs.append(run)
    return sorted((r for r in runs if r.get("finished_at")), key=lambda r: r["finished_at"])


def reached(runs: list[dict[str, Any]], target: float, started_at: datetime) -> tuple[float, float]:
    """Training and wall seconds until a completed run's best val accuracy was >= `target`."""
    spent = 0.0
    for run in runs:
        spent += run.get("train_seconds") or 0.0
        if run["status"] == "completed" and run["best_val_accuracy"] >= target:
            at = datetime.fromisoformat(run["finished_at"]) - started_at
            return spent, at.total_seconds()
    return math.nan, math.nan


def best_completed(runs: list[dict[str, Any]]) -> float:
    """The best val accuracy of the completed runs; NaN when every run was pruned or failed."""
    bests = [r["best_val_accuracy"] for r in runs if r["status"] == "completed"]
    return max(bests, default=math.nan)


def measure(sweep: Path, wall: float, started_at: datetime) -> dict[str, Any]:
    runs = finished_runs(sweep)
    best = best_completed(runs)
    to_own = reached(runs, best - WITHIN, started_at)
    return {
        "trials": len(runs),
        "pruned": sum(r["status"] == "pruned" for r in runs),
        "epochs trained": sum(r.get("epochs_completed") or 0 for r in runs),
        "train s": sum(r.get("train_seconds") or 0.0 for r in runs),
        "wall s": wall,
        "best val acc": best,
        "train s to within 0.3 of own best": to_own[0],
        "wall s to within 0.3 of own best": to_own[1],
        "_runs": runs,
        "_started_at": started_at,
    }


def against_no_pruning(row: dict[str, Any], base: dict[str, Any], trials: int) -> None:
    """Add the columns that compare a search with the unpruned search of the same seed."""
    train_s, _ = reached(row["_runs"], base["best val acc"] - WITHIN, row["_started_at"])
    row["train s to within 0.3 of no pruning's best"] = train_s
    row["... vs no pruning's train s"] = train_s / base["train s"]
    if row is base:  # its share is its own clock; the target is for pruned searches
        row["target met"] = "-"
    else:
        row["target met"] = "yes" if train_s <= 0.5 * base["train s"] else "no"  # NaN: never
    first = [run for run in row["_runs"] if run["trial"] < trials]  # the unpruned count
    best = best_completed(first)
    first_s = sum(run.get("train_seconds") or 0.0 for run in first)
    row[f"first {trials}: train s vs no pruning"] = first_s / base["train s"]
    # Epochs are what a CPU busy with other work cannot change: the same models on the same data.
    epochs = sum(run.get("epochs_completed") or 0 for run in first)
    row[f"first {trials}: epochs vs no pruning"] = epochs / base["epochs trained"]
    row[f"first {trials}: best vs no pruning (points)"] = 100 * (best - base["best val acc"])


def mean_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per search, the mean over seeds of every numeric column (with several seeds)."""
    means = []
    for name in dict.fromkeys(row["search"] for row in rows):
        mine = [row for row in rows if row["search"] == name]
        mean: dict[str, Any] = {"search": name, "seed": "mean"}
        for key, value in mine[0].items():
            if isinstance(value, int | float) and key != "seed":
                mean[key] = sum(row[key] for row in mine) / len(mine)
        if "target met" in mine[0]:
            met = sum(row["target met"] == "yes" for row in mine)
            mean["target met"] = "-" if mine[0]["target met"] == "-" else f"{met}/{len(mine)}"
        means.append(mean)
    return means


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 trials of 2 epochs, 1,024 images")
    parser.add_argument("--subset", type=int, default=20000, help="training images (0: all)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="the sampler's seeds")
    parser.add_argument("--pruned-trials", type=int, help="trials of a pruned search (default: "
                        "twice the unpruned search's)")  # fmt: skip
    parser.add_argument("--out", type=Path, help="folder for search.csv")
    parser.add_argument("--only", nargs="+", choices=list(VARIANTS), help="run these variants")
    args = parser.parse_args()
    trials, epochs, subset = (4, 2, 1024) if args.quick else (24, 8, args.subset)
    pruned_trials = args.pruned_trials or 2 * trials
    if pruned_trials < trials:
        parser.error(f"--pruned-trials {pruned_trials}: at least the unpruned search's {trials}")
    common = [f"epochs={epochs}"] + ([f"dataset.subset={subset}"] if subset else [])
    chosen = {name: VARIANTS[name] for name in args.only or VARIANTS}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            base = None
            for number, (name, (extra, workers)) in enumerate(chosen.items()):
                sweep = Path(tmp) / f"seed{seed}-search{number}"
                started_at = datetime.now().astimezone()
                n_trials = trials if name == "no pruning" else pruned_trials
                search = [*common, f"hydra.sweeper.n_trials={n_trials}",
                          f"hydra.sweeper.sampler.seed={seed}", *extra]  # fmt: skip
                wall = run_search(sweep, search, workers)
                row = {"search": name, "seed": seed, **measure(sweep, wall, started_at)}
                base = row if name == "no pruning" else base
                if base is not None:
                    against_no_pruning(row, base, trials)
                rows.append(row)
                print(f"seed {seed}, {name}: {row['trials']} trials ({row['pruned']} pruned), "
                      f"{row['train s']:.0f} s training, {wall:.0f} s wall, best val "
                      f"{row['best val acc']:.4f}", flush=True)  # fmt: skip
    rows = [{k: v for k, v in row.items() if not k.startswith("_")} for row in rows]
    if len(args.seeds) > 1:
        rows += mean_rows(rows)
    title = (f"Search: {trials} trials without pruning, {pruned_trials} with, of up to {epochs} "
             f"epochs, {' '.join(common)}, TPE seeds {args.seeds}; target: a best within 0.3 "
             f"points of no pruning's found in <= 50 % of its training s; {machine()}")  # fmt: skip
    print_table(rows, title)
    write_csv(rows, "search", args.out)


if __name__ == "__main__":
    main()
