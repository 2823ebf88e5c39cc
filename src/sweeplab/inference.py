"""Eval and predict: load a checkpoint, check it fits the config, and use it on the test set."""

from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from sweeplab.config import RunConfig, as_container, check_config
from sweeplab.data import Splits, load_splits
from sweeplab.datasets import dataset_spec
from sweeplab.epoch import evaluate, scored_logits
from sweeplab.errors import SweeplabError
from sweeplab.models import MODELS, build_model
from sweeplab.run_folder import Checkpoint
from sweeplab.run_format import CONFUSION_MATRIX, flatten, write_json
from sweeplab.runtime import memory_format, set_up

log = logging.getLogger(__name__)  # to the console and the run folder's run.log

# What a checkpoint must share with the config that uses it (model. means every model field).
MUST_MATCH = ("dataset.name", "model.", "input_size", "resize")


def _override(key: str, value: Any) -> str:
    """`key=value` as typed on the command line (JSON for lists, booleans and null)."""
    text = value if isinstance(value, str) else json.dumps(value).replace(" ", "")
    return f"{key}={text}"


def check_fits(checkpoint: Checkpoint, run: RunConfig, ckpt: str) -> None:
    """Raise one line naming every field in which the checkpoint and the config differ."""
    saved, current = flatten(checkpoint.config), flatten(as_container(run))
    if saved.get("model.name") != current.get("model.name"):
        # Another model: its group, then each field the checkpoint set away from its default.
        name = saved.get("model.name")
        spec = MODELS.get(str(name))
        schema = OmegaConf.structured(spec.schema) if spec else OmegaConf.create()
        defaults = flatten({"model": OmegaConf.to_container(schema, enum_to_str=True)})
        fixes = [f"model={name}"] + [
            _override(k, v)
            for k, v in saved.items()
            if k.startswith("model.") and k != "model.name" and defaults.get(k) != v
        ]
        raise SweeplabError(
            f"checkpoint {ckpt} holds a {name} model, but this run is configured with "
            f"model.name={current.get('model.name')}: add {' '.join(fixes)}"
        )
    keys = [k for k in sorted(saved.keys() | current.keys()) if k.startswith(MUST_MATCH)]
    differ = [k for k in keys if saved.get(k) != current.get(k)]
    if differ:
        was = ", ".join(_override(k, saved.get(k)) for k in differ)
        now = ", ".join(_override(k, current.get(k)) for k in differ)
        raise SweeplabError(
            f"checkpoint {ckpt} was trained with {was}, but this run is configured with {now}: "
            f"add {' '.join(_override(k, saved.get(k)) for k in differ)}"
        )


def scored_with_tta(checkpoint: Checkpoint) -> bool:
    """Eval and predict score as the run did: with flip TTA when it used it (a model trained
    without flips does worse with it), whatever this run's `tta` says."""
    return bool(checkpoint.config.get("tta", False))


def given_keys() -> set[str]:
    """The keys (and groups) this command set on its command line: what eval and predict
    must not take from the checkpoint."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return set()
    keys = (text.split("=", 1)[0].lstrip("+~") for text in HydraConfig.get().overrides.task)
    return set(keys)


def with_checkpoint_model(cfg: DictConfig) -> tuple[DictConfig, Checkpoint | None]:
    """The config with the model, input size and resize of `cfg.ckpt` where the command line
    did not set them, so that a checkpoint evaluates without retyping how it was trained; and
    the checkpoint (None without a `ckpt`: check_config then says one is needed)."""
    if not cfg.get("ckpt"):
        return cfg, None
    checkpoint = Checkpoint.load(cfg.ckpt)
    saved, given = checkpoint.config, given_keys()
    cfg = cfg.copy()
    with open_dict(cfg):
        spec = MODELS.get(str(saved.get("model", {}).get("name")))
        if spec is not None and not any(k == "model" or k.startswith("model.") for k in given):
            cfg.model = OmegaConf.merge(OmegaConf.structured(spec.schema), saved["model"])
        for key in ("input_size", "resize"):
            if key not in given and key in saved:
                cfg[key] = saved[key]
    return cfg, checkpoint


def _load_for(run: RunConfig, checkpoint: Checkpoint) -> tuple[Checkpoint, nn.Module, Splits]:
    """Check the checkpoint fits the config; return it with its model and the data."""
    assert run.ckpt is not None
    check_fits(checkpoint, run, run.ckpt)
    spec = dataset_spec(run.dataset.name)
    device = set_up(run.threads, run.device, run.seed)
    model = build_model(run.model, spec.channels, run.input_size, spec.num_classes)
    model.load_state_dict(checkpoint.model)
    model = model.to(device, memory_format=memory_format(model, device))
    stats = (checkpoint.normalization["mean"], checkpoint.normalization["std"])
    data = load_splits(run.dataset, run.input_size, run.resize, stats).to(device)
    return checkpoint, model, data


def evaluate_checkpoint(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Test loss, accuracy and per-class accuracy of a checkpoint, printed and saved (eval.json)."""
    cfg, loaded = with_checkpoint_model(cfg)
    run = check_config(cfg)
    assert loaded is not None
    started = time.perf_counter()
    checkpoint, model, data = _load_for(run, loaded)
    tta = scored_with_tta(checkpoint)
    test = evaluate(model, data.test_x, data.test_y, run.eval_batch_size, run.amp, tta)
    labels = data.test_y.cpu()
    per_class = {
        name: (test.predictions[labels == index] == index).float().mean().item()
        for index, name in enumerate(data.classes)
        if (labels == index).any()
    }
    result = {
        "checkpoint": str(run.ckpt),
        "checkpoint_epoch": checkpoint.epoch,
        "test_loss": test.loss,
        "test_accuracy": test.accuracy,
        "test_size": len(labels),
        "per_class_accuracy": per_class,
        "seconds": round(time.perf_counter() - started, 3),
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "eval.json", result)
    log.info("checkpoint %s (epoch %d) on %d test images:", run.ckpt, checkpoint.epoch, len(labels))
    trained_on = (checkpoint.config.get("dataset") or {}).get("subset")
    if trained_on != run.dataset.subset:  # its own run's test accuracy is not comparable
        log.info(
            "  (its run used dataset.subset=%s, so its test accuracy was on other test images; "
            "add dataset.subset=%s to score it as its run did)", trained_on, trained_on,
        )  # fmt: skip
    log.info("  test loss %.4f, accuracy %.2f%%", test.loss, 100 * test.accuracy)
    for name, accuracy in per_class.items():
        log.info("  %12s: %6.2f%%", name, 100 * accuracy)
    saved = [run_dir / "eval.json"]
    if run.figures:
        from sweeplab import figures  # matplotlib and seaborn: only when figures are drawn

        matrix = figures.confusion_matrix(labels, test.predictions, data.classes)
        figures.plot_confusion_matrix(matrix, data.classes, run_dir / CONFUSION_MATRIX)
        saved.append(run_dir / CONFUSION_MATRIX)
    log.info("saved %s", " and ".join(map(str, saved)))
    return result


def predict(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Predict `predict.n` test images (chosen by `seed`); print them and save a figure + CSV."""
    from sweeplab import figures

    cfg, loaded = with_checkpoint_model(cfg)
    run = check_config(cfg)
    assert loaded is not None
    checkpoint, model, data = _load_for(run, loaded)
    generator = torch.Generator().manual_seed(run.seed)
    count = min(run.predict.n, len(data.test_y))
    index = torch.randperm(len(data.test_y), generator=generator)[:count].to(data.test_y.device)
    with torch.inference_mode():
        model.eval()
        logits = scored_logits(model, data.test_x[index], scored_with_tta(checkpoint))
        probabilities = logits.softmax(1).cpu()
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
    with (run_dir / "predictions.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    images = data.to_pixels(data.test_x[index])
    figures.sample_predictions(images, labels, predicted, data.classes, run_dir / "predictions.png")
    for r in rows:
        mark = "ok " if r["true"] == r["predicted"] else "BAD"
        log.info(
            "%s test image %5d: true %-12s predicted %-12s (%.1f%%)",
            mark, r["test_index"], r["true"], r["predicted"], 100 * r["confidence"],
        )  # fmt: skip
    log.info("saved %s and %s", run_dir / "predictions.png", run_dir / "predictions.csv")
    return {"predictions": rows}
