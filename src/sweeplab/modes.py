"""A run's modes: train (then test), eval a checkpoint, predict with a checkpoint, summary.

`run_mode` is what `run.py` calls; `train_and_evaluate` is importable for tests and notebooks.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from sweeplab import figures
from sweeplab.config import Mode, RunConfig, check_config, config_hash
from sweeplab.data import Splits
from sweeplab.inference import evaluate_checkpoint, predict
from sweeplab.models import build_model, count_parameters
from sweeplab.resume import decide_start
from sweeplab.run_folder import write_json
from sweeplab.session import NUM_CLASSES, prepare
from sweeplab.trainer import Progress, evaluate_test_split, fit, restore
from sweeplab.training import build_optimizer, build_scheduler, steps_per_epoch

log = logging.getLogger(__name__)


def run_mode(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Check the config, then train, eval or predict as `cfg.mode` says; return the results."""
    run = check_config(cfg)
    if run.mode == Mode.train:
        return train_and_evaluate(cfg, run_dir, run)
    if run.mode == Mode.eval:
        return evaluate_checkpoint(run, run_dir)
    if run.mode == Mode.summary:
        return summarise_model(run, run_dir)
    return predict(run, run_dir)


def summarise_model(run: RunConfig, run_dir: Path) -> dict[str, Any]:
    """Print the model's layer table (output shapes, parameters) and write model_summary.txt."""
    import torchinfo  # only this mode needs it

    model = build_model(run.model, 1, run.input_size, NUM_CLASSES)
    table = torchinfo.summary(
        model,
        input_size=(1, 1, run.input_size, run.input_size),
        col_names=("output_size", "num_params"),
        depth=4,
        verbose=0,
    )
    params = count_parameters(model)
    masked = sum(p.numel() for p in model.parameters()) - params
    note = f" ({masked:,} weights a connection table keeps at zero are not counted)"
    text = (
        f"{run.model.name} at {run.input_size}x{run.input_size}, {NUM_CLASSES} classes\n{table}\n"
        f"sweeplab parameter count: {params:,}{note if masked else ''}"
    )
    print(text)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "model_summary.txt").write_text(text + "\n")
    return {"model": run.model.name, "input_size": run.input_size, "params": params}


def record_failure(cfg: DictConfig, run_dir: Path, err: BaseException) -> None:
    """Write `status: failed` for a job that stopped before it wrote a summary of its own."""
    path = run_dir / "summary.json"
    if cfg.get("mode") != "train" or path.exists():
        return  # never overwrite another run's summary (e.g. a config-hash mismatch)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(
        path,
        {
            "status": "failed",
            "error": f"{type(err).__name__}: {err}",
            "config_hash": config_hash(cfg),
            "finished_at": _now(),
        },
    )


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (in a basic-launcher sweep: the max
    over the jobs run so far, which share the process)."""
    import resource

    kilobytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB on Linux
    return round(kilobytes / 1024, 1)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def train_and_evaluate(
    cfg: DictConfig, run_dir: Path, run: RunConfig | None = None
) -> dict[str, Any]:
    """Train, keep the best checkpoint by val accuracy, test the final model, write everything.

    In a folder that already holds this run it skips a completed run and resumes an
    interrupted one (see `resume.py`). Returns the summary, also written as summary.json;
    a run that raises or is interrupted still writes its summary before the exception goes on.
    """
    run = run or check_config(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    expected_hash = config_hash(cfg)
    start = decide_start(run_dir, expected_hash)
    if start.action == "skip":
        log.info("%s: already completed with this config; skipped", run_dir)
        assert start.summary is not None
        return start.summary
    summary: dict[str, Any] = {
        "status": "failed",
        "error": None,
        "config_hash": expected_hash,
        "model": run.model.name,
        "dataset": run.dataset.name,
        "input_size": run.input_size,
        "seed": run.seed,
        "epochs": run.epochs,
        "started_at": _now(),
    }
    try:
        _train(cfg, run, run_dir, summary, start.state)
    except KeyboardInterrupt:
        summary.update(status="interrupted", error="KeyboardInterrupt", finished_at=_now())
        write_json(run_dir / "summary.json", summary)
        raise
    except Exception as err:
        summary.update(status="failed", error=f"{type(err).__name__}: {err}", finished_at=_now())
        write_json(run_dir / "summary.json", summary)
        raise
    write_json(run_dir / "summary.json", summary)
    return summary


def _train(
    cfg: DictConfig,
    run: RunConfig,
    run_dir: Path,
    summary: dict[str, Any],
    resume_from: dict[str, Any] | None,
) -> None:
    model, data, device = prepare(run)
    if run.compile:
        model.compile()  # in place: state_dict keys stay those of the plain model
    summary.update(
        params=count_parameters(model),
        device=str(device),
        torch_version=torch.__version__,
        train_size=len(data.train_y),
        val_size=len(data.val_y),
        test_size=len(data.test_y),
        data_source=data.source,
        data_seconds=round(data.load_seconds, 3),
    )
    log.info(
        "%s (%s parameters) on %s, %d train / %d val / %d test images (%.2f s), %s, "
        "%d torch thread(s)",
        run.model.name,
        f"{summary['params']:,}",
        run.dataset.name,
        len(data.train_y),
        len(data.val_y),
        len(data.test_y),
        data.load_seconds,
        device,
        torch.get_num_threads(),
    )
    optimizer = build_optimizer(model, run.optimizer, run.regularization.weight_decay)
    steps = steps_per_epoch(len(data.train_y), min(run.batch_size, len(data.train_y)))
    scheduler = build_scheduler(optimizer, run.scheduler, steps * run.epochs)
    progress = Progress()
    if resume_from is not None:
        progress = restore(resume_from, model, optimizer, scheduler)
        log.info("resuming %s after epoch %d of %d", run_dir, progress.epoch, run.epochs)
    checkpoint_base = {
        "config": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
        "config_hash": summary["config_hash"],
        "normalization": {"mean": data.mean, "std": data.std},
        "classes": list(data.classes),
    }
    progress = fit(model, optimizer, scheduler, data, run, run_dir, checkpoint_base, progress)
    summary.update(
        best_val_accuracy=progress.best_val_accuracy,
        best_epoch=progress.best_epoch,
        epochs_completed=progress.epoch,
        train_seconds=round(progress.train_seconds, 3),
        images_per_second=progress.images_per_second and round(progress.images_per_second, 1),
        compile_seconds=progress.compile_seconds and round(progress.compile_seconds, 2),
        peak_rss_mb=peak_rss_mb(),
    )
    if progress.diverged:
        summary.update(status="diverged", error=progress.diverged, finished_at=_now())
        return
    lr = optimizer.param_groups[0]["lr"]
    test = evaluate_test_split(model, data, run, run_dir, progress, lr)
    summary.update(
        status="completed",
        test_loss=test.loss,
        test_accuracy=test.accuracy,
        finished_at=_now(),
    )
    log.info(
        "test loss %.4f acc %.2f%% (best val %.2f%% at epoch %d); %.1f s training",
        test.loss,
        100 * test.accuracy,
        100 * (progress.best_val_accuracy or 0),
        progress.best_epoch or 0,
        progress.train_seconds,
    )
    if run.figures:
        _write_figures(run_dir, data, test.predictions)


def _write_figures(run_dir: Path, data: Splits, test_predictions: torch.Tensor) -> None:
    figures.learning_curves(run_dir / "metrics.csv", run_dir / "learning_curves.png")
    images = data.to_pixels(data.test_x[:5])
    figures.sample_predictions(
        images,
        data.test_y[:5].cpu(),
        test_predictions[:5],
        data.classes,
        run_dir / "test_samples.png",
    )
    matrix = figures.confusion_matrix(data.test_y.cpu(), test_predictions, data.classes)
    figures.plot_confusion_matrix(matrix, data.classes, run_dir / "confusion_matrix.png")
