"""Running a run again in its folder: skip completed, resume interrupted, rerun failed."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from sweeplab import train
from sweeplab.errors import SweeplabError
from sweeplab.train import train_and_evaluate
from tests.conftest import QUICK, metrics_without_timing

ARGS = (*QUICK, "epochs=3", "figures=false", "regularization.noise_std=0.1", "model.dropout=0.3")


def run_with_ctrl_c_in_epoch(cfg, run_dir: Path, monkeypatch, epoch: int) -> None:
    """Train `cfg` into `run_dir`, pressing Ctrl-C as `epoch` starts."""
    real_train_epoch = train.train_epoch

    def ctrl_c(*args, description: str, **kwargs):
        if description.startswith(f"epoch {epoch}/"):
            raise KeyboardInterrupt
        return real_train_epoch(*args, description=description, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(train, "train_epoch", ctrl_c)
        with pytest.raises(KeyboardInterrupt):
            train_and_evaluate(cfg, run_dir)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    from hydra import compose, initialize_config_dir

    from tests.conftest import CONF

    run_dir = tmp_path_factory.mktemp("uninterrupted")
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        train_and_evaluate(compose("config", overrides=list(ARGS)), run_dir)
    return run_dir


def test_interrupted_run_resumes_to_the_same_metrics(
    make_cfg, tmp_path: Path, monkeypatch, uninterrupted: Path
) -> None:
    cfg = make_cfg(*ARGS)
    run_with_ctrl_c_in_epoch(cfg, tmp_path, monkeypatch, 3)
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "interrupted"
    assert metrics_without_timing(tmp_path).epoch.max() == 2

    summary = train_and_evaluate(cfg, tmp_path)
    assert summary.status == "completed"
    pd.testing.assert_frame_equal(
        metrics_without_timing(tmp_path), metrics_without_timing(uninterrupted)
    )
    expected = json.loads((uninterrupted / "summary.json").read_text())
    assert summary.test_accuracy == expected["test_accuracy"]
    assert summary.best_epoch == expected["best_epoch"]


def test_killed_run_with_metrics_ahead_of_its_checkpoint_drops_the_extra_rows(
    make_cfg, tmp_path: Path, monkeypatch, uninterrupted: Path
) -> None:
    # kill -9 between writing epoch 2's rows and its last.pt: rows of epoch 2, checkpoint of 1.
    cfg = make_cfg(*ARGS)
    run_with_ctrl_c_in_epoch(cfg, tmp_path, monkeypatch, 2)
    (tmp_path / "summary.json").unlink()
    with (tmp_path / "metrics.csv").open("a") as metrics:
        metrics.write("2,train,9.9,0.1,0.001,1.0,100\n")
    train_and_evaluate(cfg, tmp_path)
    pd.testing.assert_frame_equal(
        metrics_without_timing(tmp_path), metrics_without_timing(uninterrupted)
    )


def test_completed_run_is_skipped_untouched(make_cfg, uninterrupted: Path) -> None:
    files = ["metrics.csv", "summary.json", "checkpoints/last.pt", "checkpoints/best.pt"]
    before = {name: (uninterrupted / name).stat().st_mtime_ns for name in files}
    summary = train_and_evaluate(make_cfg(*ARGS), uninterrupted)
    assert summary.status == "completed"
    assert {name: (uninterrupted / name).stat().st_mtime_ns for name in files} == before


def test_failed_run_is_run_again_from_scratch(make_cfg, tmp_path: Path, monkeypatch) -> None:
    cfg = make_cfg(*ARGS)

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(train, "evaluate", crash)
    with pytest.raises(RuntimeError):
        train_and_evaluate(cfg, tmp_path)
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "failed"
    monkeypatch.undo()
    assert train_and_evaluate(cfg, tmp_path).status == "completed"
    assert list(metrics_without_timing(tmp_path).epoch) == [1, 1, 2, 2, 3, 3, 3]


def test_folder_of_another_config_stops_with_a_clear_message(make_cfg, uninterrupted: Path) -> None:
    with pytest.raises(SweeplabError, match="another config") as info:
        train_and_evaluate(make_cfg(*ARGS, "seed=7"), uninterrupted)
    assert "hydra.sweep.dir" in str(info.value)
