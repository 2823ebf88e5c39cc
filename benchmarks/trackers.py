"""What a tracker costs a run: the default run with logger none, tensorboard and mlflow.

    python benchmarks/trackers.py                   # the default run, 5 epochs, each logger twice
    python benchmarks/trackers.py --quick           # 1,024 images, 2 epochs
    python benchmarks/trackers.py --tracking-uri http://127.0.0.1:5000   # MLflow over HTTP

Every run goes through `train_and_evaluate` in this process; the trackers' hooks are timed
where the run calls them (start, each epoch's end, end), so the table gives the seconds they
take beside the run's own training seconds. MLflow logs to a SQLite store in a temporary
folder unless --tracking-uri names a server, one store for all runs as a user's ./mlflow.db
is: the first run creates it, which takes longer. The first MLflow run of the process also
pays for importing MLflow (start-up, not training); the table shows it apart.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from common import compose_cfg, machine, print_table, write_csv

LOGGERS = ("none", "tensorboard", "mlflow")


class Timed:
    """A hook whose calls are timed: seconds per method name."""

    def __init__(self, hook: Any, seconds: dict[str, float]) -> None:
        self.hook, self.seconds = hook, seconds

    def __getattr__(self, name: str) -> Any:
        call = getattr(self.hook, name)

        def timed(*args: Any) -> Any:
            started = time.perf_counter()
            try:
                return call(*args)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

        return timed


def one_run(logger: str, overrides: list[str], folder: Path, uri: str | None) -> dict[str, Any]:
    from sweeplab import train
    from sweeplab.trackers import tracker_hooks

    choice = [] if logger == "none" else [f"logger={logger}"]
    if logger == "mlflow":
        choice.append(f"logger.mlflow.tracking_uri={uri or f'sqlite:///{folder.parent}/mlflow.db'}")
        choice.append("logger.mlflow.experiment_name=benchmark")
    cfg = compose_cfg([*overrides, *choice, "figures=false", "progress=false"])
    seconds: dict[str, float] = {}
    importing = time.perf_counter()
    hooks = tracker_hooks(train.check_config(cfg).logger)  # imports the tracker's package
    import_seconds = time.perf_counter() - importing
    real = train.tracker_hooks
    train.tracker_hooks = lambda _: [Timed(hook, seconds) for hook in hooks]  # type: ignore
    try:
        started = time.perf_counter()
        summary = train.train_and_evaluate(cfg, folder / logger)
        wall = time.perf_counter() - started
    finally:
        train.tracker_hooks = real
    tracked = sum(seconds.values())
    epochs = summary.epochs_completed or 1
    return {
        "logger": logger,
        "train s": summary.train_seconds,
        "run wall s": wall,
        "tracker s": tracked,
        "start s": seconds.get("start", 0.0),
        "per epoch s": seconds.get("epoch_end", 0.0) / epochs,
        "end s": seconds.get("end", 0.0),
        "% of train s": 100 * tracked / summary.train_seconds,
        "% per epoch": 100 * seconds.get("epoch_end", 0.0) / summary.train_seconds,
        "import s": import_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,024 images, 2 epochs, 1 repeat")
    parser.add_argument("--repeats", type=int, default=3, help="runs per logger (interleaved)")
    parser.add_argument("--tracking-uri", help="an MLflow server (default: SQLite in a tmp dir)")
    parser.add_argument("--out", type=Path, help="folder for trackers.csv")
    args = parser.parse_args()
    out = args.out.resolve() if args.out else None
    overrides = ["dataset.subset=1024", "epochs=2", "threads=2"] if args.quick else ["threads=2"]
    repeats = 1 if args.quick else args.repeats
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # MLflow's local artifact folders land here
        for repeat in range(repeats):
            for logger in LOGGERS:
                folder = Path(tmp) / f"{repeat}"
                folder.mkdir(exist_ok=True)
                row = one_run(logger, overrides, folder, args.tracking_uri)
                rows.append({"repeat": repeat, **row})
                print(f"{logger:12s} repeat {repeat}: {row['tracker s']:.3f} s in the tracker, "
                      f"{row['train s']:.1f} s training", flush=True)  # fmt: skip
    title = (
        f"Trackers on the default run ({' '.join(overrides)}), {machine()}; "
        f"MLflow store: {args.tracking_uri or 'SQLite file'}"
    )
    print_table(rows, title)
    write_csv(rows, "trackers", out)


if __name__ == "__main__":
    main()
