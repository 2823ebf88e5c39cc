"""Eval and predict: load a checkpoint, check it fits the config, and use it on the test set."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from sweeplab import figures
from sweeplab.config import RunConfig
from sweeplab.data import Splits
from sweeplab.errors import SweeplabError
from sweeplab.run_folder import load_checkpoint, write_json
from sweeplab.session import prepare
from sweeplab.training import evaluate


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
    model, data, _ = prepare(run, stats=(norm["mean"], norm["std"]))
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
    test = evaluate(model, data.test_x, data.test_y, run.eval_batch_size, run.amp)
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
    images = data.to_pixels(data.test_x[index])
    figures.sample_predictions(images, labels, predicted, data.classes, run_dir / "predictions.png")
    for r in rows:
        mark = "ok " if r["true"] == r["predicted"] else "BAD"
        print(
            f"{mark} test image {r['test_index']:>5}: true {r['true']:<12} "
            f"predicted {r['predicted']:<12} ({100 * r['confidence']:.1f}%)"
        )
    print(f"saved {run_dir / 'predictions.png'} and predictions.csv")
    return {"predictions": rows}
