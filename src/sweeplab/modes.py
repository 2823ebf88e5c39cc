"""A run's modes, dispatched by `mode=`: train (then test), eval, predict, summary.

`run_mode` is what `run.py` calls; each mode is a function of the composed config and the run
folder, importable on its own (`train.train_and_evaluate` for training).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from sweeplab.config import Mode, check_config, config_hash
from sweeplab.datasets import dataset_spec
from sweeplab.errors import SweeplabError
from sweeplab.inference import evaluate_checkpoint, predict
from sweeplab.models import build_model, count_parameters
from sweeplab.run_format import SUMMARY, Status, Summary
from sweeplab.train import train_and_evaluate


def summarise_model(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Print the model's layer table (output shapes, parameters) and write model_summary.txt."""
    import torchinfo  # only this mode needs it

    run = check_config(cfg)
    assert run.input_size is not None
    spec = dataset_spec(run.dataset.name)
    model = build_model(run.model, spec.channels, run.input_size, spec.num_classes)
    table = torchinfo.summary(
        model,
        input_size=(1, spec.channels, run.input_size, run.input_size),
        col_names=("output_size", "num_params"),
        depth=4,
        verbose=0,
    )
    # torchinfo prints its unit enums by name on Python 3.11+ ("Units.MEGABYTES"): by value
    table_text = re.sub(r"Units\.(\w+)", lambda m: torchinfo.Units[m.group(1)].value, str(table))
    params = count_parameters(model)
    masked = sum(p.numel() for p in model.parameters()) - params
    note = f" ({masked:,} weights a connection table keeps at zero are not counted)"
    text = (
        f"{run.model.name} at {run.input_size}x{run.input_size}x{spec.channels}, "
        f"{spec.num_classes} classes\n{table_text}\n"
        f"sweeplab parameter count: {params:,}{note if masked else ''}"
    )
    print(text)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "model_summary.txt").write_text(text + "\n")
    return {"model": run.model.name, "input_size": run.input_size, "params": params}


MODES: dict[Mode, Callable[[DictConfig, Path], Any]] = {
    Mode.train: train_and_evaluate,
    Mode.eval: evaluate_checkpoint,
    Mode.predict: predict,
    Mode.summary: summarise_model,
}


def run_mode(cfg: DictConfig, run_dir: Path) -> Any:
    """Run the mode `cfg.mode` names; return what it returns (a Summary for training)."""
    return MODES[Mode(cfg.mode)](cfg, run_dir)


def record_failure(cfg: DictConfig, run_dir: Path, err: BaseException) -> None:
    """Write `status: failed` for a training run that stopped before writing a summary (e.g.
    at a config check), so that every run folder says how it ended."""
    if cfg.get("mode") != Mode.train or (run_dir / SUMMARY).exists():
        return  # never overwrite another run's summary (e.g. a config-hash mismatch)
    try:
        hash_ = config_hash(check_config(cfg))
    except SweeplabError:
        hash_ = None  # the config itself is what failed
    run_dir.mkdir(parents=True, exist_ok=True)
    summary = Summary(config_hash=hash_)
    summary.end(Status.FAILED, err)
    summary.write(run_dir)
