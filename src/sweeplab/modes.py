"""The three modes of a run: train (and test), eval a checkpoint, predict with a checkpoint.

Each is an importable function of the composed config and the run folder; `run.py` only picks
the run folder and calls `run_mode`.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from sweeplab import figures
from sweeplab.config import Mode, RunConfig, check_config, config_hash
from sweeplab.data import Splits, load_splits
from sweeplab.errors import SweeplabError
from sweeplab.models import build_model, count_parameters
from sweeplab.run_folder import (
    MetricsWriter,
    load_checkpoint,
    save_checkpoint,
    write_json,
)
from sweeplab.runtime import pick_device, seed_everything, set_threads
from sweeplab.training import (
    build_optimizer,
    build_scheduler,
    evaluate,
    steps_per_epoch,
    train_epoch,
)

log = logging.getLogger(__name__)
NUM_CLASSES = 10


def run_mode(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Check the config, then train, eval or predict as `cfg.mode` says; return the results."""
    run = check_config(cfg)
    if run.mode == Mode.train:
        return train_and_evaluate(cfg, run_dir, run)
    if run.mode == Mode.eval:
        return evaluate_checkpoint(run, run_dir)
    return predict(run, run_dir)


def _prepare(run: RunConfig, stats: tuple[float, float] | None = None) -> tuple:
    """Threads, device, seeded model (geometry checked before any data loads), data on device."""
    set_threads(run.threads)
    device = pick_device(run.device)
    seed_everything(run.seed)
    model = build_model(run.model, 1, run.input_size, NUM_CLASSES).to(device)
    data = load_splits(run.dataset, run.input_size, run.resize, stats)
    for name in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y"):
        setattr(data, name, getattr(data, name).to(device))
    return model, data, device


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def train_and_evaluate(
    cfg: DictConfig, run_dir: Path, run: RunConfig | None = None
) -> dict[str, Any]:
    """Train, keep the best checkpoint by val accuracy, test the final model, write everything.

    Returns the summary (also written as summary.json). A run that raises or is interrupted
    still writes a summary with its status and error before the exception goes on.
    """
    run = run or check_config(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {
        "status": "failed",
        "error": None,
        "config_hash": config_hash(cfg),
        "model": run.model.name,
        "dataset": run.dataset.name,
        "input_size": run.input_size,
        "seed": run.seed,
        "epochs": run.epochs,
        "started_at": _now(),
    }
    try:
        _train(cfg, run, run_dir, summary)
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


def _train(cfg: DictConfig, run: RunConfig, run_dir: Path, summary: dict[str, Any]) -> None:
    model, data, device = _prepare(run)
    summary.update(
        params=count_parameters(model),
        device=str(device),
        torch_version=torch.__version__,
        train_size=len(data.train_y),
        val_size=len(data.val_y),
        test_size=len(data.test_y),
        data_source=data.source,
    )
    log.info(
        "%s (%s parameters) on %s, %d train / %d val / %d test images, %s",
        run.model.name,
        f"{summary['params']:,}",
        run.dataset.name,
        len(data.train_y),
        len(data.val_y),
        len(data.test_y),
        device,
    )
    reg = run.regularization
    optimizer = build_optimizer(model, run.optimizer, reg.weight_decay)
    steps = steps_per_epoch(len(data.train_y), min(run.batch_size, len(data.train_y)))
    scheduler = build_scheduler(optimizer, run.scheduler, steps * run.epochs)
    # noise_std is in pixel units; the data are normalised, so scale it the same way.
    noise = reg.noise_std / data.std
    checkpoint_base = {
        "config": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
        "config_hash": summary["config_hash"],
        "normalization": {"mean": data.mean, "std": data.std},
        "classes": list(data.classes),
    }
    metrics = MetricsWriter(run_dir / "metrics.csv")
    best_val, best_epoch, train_seconds, train_images = -1.0, 0, 0.0, 0
    try:
        for epoch in range(1, run.epochs + 1):
            result = train_epoch(
                model,
                optimizer,
                scheduler,
                data.train_x,
                data.train_y,
                run.batch_size,
                noise,
                reg.label_smoothing,
                description=f"epoch {epoch}/{run.epochs}",
                progress=run.progress,
            )
            lr = optimizer.param_groups[0]["lr"]
            train_seconds += result.seconds
            train_images += result.images
            metrics.write(
                epoch=epoch,
                split="train",
                loss=result.loss,
                accuracy=result.accuracy,
                lr=lr,
                seconds=result.seconds,
                images_per_second=result.images_per_second,
            )
            if result.diverged:
                summary.update(
                    status="diverged",
                    error=f"training loss became {result.loss} in epoch {epoch}: "
                    "lower optimizer.lr or add batch norm",
                )
                log.error("diverged: %s", summary["error"])
                break
            val = evaluate(model, data.val_x, data.val_y, run.eval_batch_size)
            metrics.write(
                epoch=epoch,
                split="val",
                loss=val.loss,
                accuracy=val.accuracy,
                lr=lr,
                seconds=val.seconds,
                images_per_second=val.images_per_second,
            )
            log.info(
                "epoch %d/%d: train loss %.4f acc %.2f%% | val loss %.4f acc %.2f%% | "
                "%.1f s, %s img/s",
                epoch,
                run.epochs,
                result.loss,
                100 * result.accuracy,
                val.loss,
                100 * val.accuracy,
                result.seconds,
                f"{result.images_per_second:,.0f}",
            )
            state = {
                **checkpoint_base,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch,
                "rng": torch.get_rng_state(),
                "val_accuracy": val.accuracy,
            }
            if val.accuracy > best_val:  # chosen on val, never on test
                best_val, best_epoch = val.accuracy, epoch
                save_checkpoint(run_dir / "checkpoints" / "best.pt", state)
            save_checkpoint(run_dir / "checkpoints" / "last.pt", state)
        summary.update(
            best_val_accuracy=best_val if best_epoch else None,
            best_epoch=best_epoch or None,
            epochs_completed=epoch if not result.diverged else epoch - 1,
            train_seconds=round(train_seconds, 3),
            images_per_second=round(train_images / train_seconds, 1) if train_seconds else None,
        )
        if result.diverged:
            summary["finished_at"] = _now()
            return
        test = evaluate(model, data.test_x, data.test_y, run.eval_batch_size)
        metrics.write(
            epoch=run.epochs,
            split="test",
            loss=test.loss,
            accuracy=test.accuracy,
            lr=optimizer.param_groups[0]["lr"],
            seconds=test.seconds,
            images_per_second=test.images_per_second,
        )
    finally:
        metrics.close()
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
        100 * best_val,
        best_epoch,
        train_seconds,
    )
    if run.figures:
        _write_figures(run_dir, data, test.predictions)


def _write_figures(run_dir: Path, data: Splits, test_predictions: torch.Tensor) -> None:
    figures.learning_curves(run_dir / "metrics.csv", run_dir / "learning_curves.png")
    images = (data.test_x[:5].cpu() * data.std) + data.mean  # back to pixel units to show
    figures.sample_predictions(
        images,
        data.test_y[:5].cpu(),
        test_predictions[:5],
        data.classes,
        run_dir / "test_samples.png",
    )
    matrix = figures.confusion_matrix(data.test_y.cpu(), test_predictions, data.classes)
    figures.plot_confusion_matrix(matrix, data.classes, run_dir / "confusion_matrix.png")


def _load_for(run: RunConfig) -> tuple[dict[str, Any], torch.nn.Module, Splits]:
    """Load `run.ckpt`, check it fits the configured model and input size, return model + data."""
    assert run.ckpt is not None
    state = load_checkpoint(run.ckpt)
    saved = state["config"]
    current = OmegaConf.to_container(OmegaConf.structured(run), enum_to_str=True)
    assert isinstance(current, dict)
    for key in ("model", "input_size", "resize"):
        if saved.get(key) != current[key]:
            overrides = _overrides_for(saved, key)
            raise SweeplabError(
                f"checkpoint {run.ckpt} was trained with {key} {saved.get(key)}, "
                f"but this run is configured with {current[key]}: add {overrides}"
            )
    norm = state["normalization"]
    model, data, _ = _prepare(run, stats=(norm["mean"], norm["std"]))
    model.load_state_dict(state["model"])
    return state, model, data


def _overrides_for(saved: dict[str, Any], key: str) -> str:
    if key in ("input_size", "resize"):
        return f"{key}={saved[key]}"
    return f"model={saved['model']['name']} (and its model.* keys)"


def evaluate_checkpoint(run: RunConfig, run_dir: Path) -> dict[str, Any]:
    """Test loss, accuracy and per-class accuracy of a checkpoint, printed and saved (eval.json)."""
    started = time.perf_counter()
    state, model, data = _load_for(run)
    test = evaluate(model, data.test_x, data.test_y, run.eval_batch_size)
    labels = data.test_y.cpu()
    per_class = {
        name: (test.predictions[labels == index] == index).float().mean().item()
        for index, name in enumerate(data.classes)
        if (labels == index).any()
    }
    result = {
        "checkpoint": str(run.ckpt),
        "checkpoint_epoch": state.get("epoch"),
        "test_loss": test.loss,
        "test_accuracy": test.accuracy,
        "test_size": len(labels),
        "per_class_accuracy": per_class,
        "seconds": round(time.perf_counter() - started, 3),
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "eval.json", result)
    print(f"checkpoint {run.ckpt} (epoch {state.get('epoch')}) on {len(labels)} test images:")
    print(f"  test loss {test.loss:.4f}, accuracy {100 * test.accuracy:.2f}%")
    for name, accuracy in per_class.items():
        print(f"  {name:>12}: {100 * accuracy:6.2f}%")
    if run.figures:
        matrix = figures.confusion_matrix(labels, test.predictions, data.classes)
        figures.plot_confusion_matrix(matrix, data.classes, run_dir / "confusion_matrix.png")
    return result


def predict(run: RunConfig, run_dir: Path) -> dict[str, Any]:
    """Predict `predict.n` test images (chosen by `seed`); print them and save a figure + CSV."""
    _, model, data = _load_for(run)
    generator = torch.Generator().manual_seed(run.seed)
    count = min(run.predict.n, len(data.test_y))
    index = torch.randperm(len(data.test_y), generator=generator)[:count].to(data.test_x.device)
    with torch.inference_mode():
        model.eval()
        probabilities = model(data.test_x[index]).softmax(1).cpu()
    confidence, predicted = probabilities.max(1)
    labels = data.test_y[index].cpu()
    rows = [
        {
            "test_index": int(i),
            "true": data.classes[t],
            "predicted": data.classes[p],
            "confidence": round(float(c), 4),
        }
        for i, t, p, c in zip(
            index.tolist(), labels.tolist(), predicted.tolist(), confidence, strict=True
        )
    ]
    run_dir.mkdir(parents=True, exist_ok=True)
    lines = ["test_index,true,predicted,confidence"]
    lines += [f"{r['test_index']},{r['true']},{r['predicted']},{r['confidence']}" for r in rows]
    (run_dir / "predictions.csv").write_text("\n".join(lines) + "\n")
    images = data.test_x[index].cpu() * data.std + data.mean
    figures.sample_predictions(images, labels, predicted, data.classes, run_dir / "predictions.png")
    for r in rows:
        mark = "ok " if r["true"] == r["predicted"] else "BAD"
        print(
            f"{mark} test image {r['test_index']:>5}: true {r['true']:<12} "
            f"predicted {r['predicted']:<12} ({100 * r['confidence']:.1f}%)"
        )
    print(f"saved {run_dir / 'predictions.png'} and predictions.csv")
    return {"predictions": rows}
