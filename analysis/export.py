"""Fill MLflow or TensorBoard from run folders: any sweep or run, logged live or not.

    python analysis/export.py multirun/wd_vs_noise --to mlflow
    python analysis/export.py multirun/wd_vs_noise --to mlflow --tracking-uri http://127.0.0.1:5000
    python analysis/export.py outputs/2026-11-30/07-00-00 --to tensorboard

The files are the source: each run's checked config (from its checkpoint, else
.hydra/config.yaml), metrics.csv and summary.json go to the tracker through the same code the
live trackers use (`sweeplab.trackers`, which reads and writes no training state), and only
what the tracker lacks is written. Run it twice: the second time it adds nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `analysis` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.collect import CollectError, find_run_folders, read_metrics
from sweeplab.run_format import LAST, SUMMARY, read_config, read_json


def run_config(folder: Path) -> dict[str, Any]:
    """The config the run trained with: its checkpoint's checked one, else Hydra's file."""
    last = folder / LAST
    if last.is_file():
        import torch

        try:
            return torch.load(last, map_location="cpu", weights_only=True)["config"]
        except Exception:  # unreadable: fall back to the YAML the run started from
            pass
    return read_config(folder)


def run_files(folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any] | None]:
    """(config, metrics.csv rows, summary.json fields or None) of one run folder."""
    metrics, _ = read_metrics(folder)
    rows = [] if metrics is None else metrics.to_dict("records")
    return run_config(folder), rows, read_json(folder / SUMMARY)


def training_runs(root: Path) -> list[Path]:
    """The run folders below `root` that trained (eval and predict folders have no metrics)."""
    folders = []
    for folder in find_run_folders(root):
        if read_config(folder).get("mode", "train") == "train":
            folders.append(folder)
    return folders


def to_mlflow(root: Path, uri: str | None, experiment_name: str | None) -> int:
    from sweeplab.run_format import sweep_folder
    from sweeplab.trackers import tracked_config
    from sweeplab.trackers.mlflow import close_parent, sync, tracking_uri

    uri = tracking_uri(uri)
    folders = training_runs(root)
    failed: dict[Path, bool] = {}  # sweep -> whether a run of it failed
    for number, folder in enumerate(folders, 1):
        config, rows, summary = run_files(folder)
        run_id = sync(uri, folder, tracked_config(config), rows, summary, experiment_name)
        print(f"[{number}/{len(folders)}] {folder} -> MLflow run {run_id}")
        if sweep := sweep_folder(folder):
            failed[sweep] = failed.get(sweep, False) or (summary or {}).get("status") == "failed"
    for sweep, any_failed in failed.items():
        close_parent(sweep, any_failed)
    print(f"exported {len(folders)} run(s) to {uri}")
    return 0


def to_tensorboard(root: Path) -> int:
    from sweeplab.trackers import tracked_config
    from sweeplab.trackers.tensorboard import logged_steps, scalar_tag, write_log

    folders = training_runs(root)
    written = 0
    for number, folder in enumerate(folders, 1):
        config, rows, summary = run_files(folder)
        steps = logged_steps(folder)
        wanted = {(scalar_tag(f"{row['split']}_accuracy"), int(row["epoch"])) for row in rows}
        if all(step in steps.get(tag, []) for tag, step in wanted):
            print(f"[{number}/{len(folders)}] {folder}: TensorBoard has it already")
            continue
        summary = summary or {}
        write_log(folder, tracked_config(config), rows, summary.get("status", "failed"),
                  summary.get("provenance"))  # fmt: skip
        written += 1
        print(f"[{number}/{len(folders)}] {folder}: event file written")
    print(f"wrote {written} of {len(folders)} run(s); open them: tensorboard --logdir {root}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="a sweep folder or a run folder")
    parser.add_argument("--to", choices=["mlflow", "tensorboard"], required=True)
    parser.add_argument(
        "--tracking-uri",
        help="MLflow's store (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here)",
    )
    parser.add_argument(
        "--experiment-name", help="MLflow experiment (default: the sweep's or run's folder)"
    )
    args = parser.parse_args(argv)
    try:
        if not args.folder.is_dir():
            raise CollectError(f"{args.folder} is not a folder: pass a sweep or run folder")
        if args.to == "mlflow":
            return to_mlflow(args.folder, args.tracking_uri, args.experiment_name)
        return to_tensorboard(args.folder)
    except CollectError as err:
        print(f"export: error: {err}", file=sys.stderr)
        return 2
    except ImportError as err:
        print(f'export: error: {err.name} is not installed: pip install -e ".[trackers]"')
        return 2


if __name__ == "__main__":
    sys.exit(main())
