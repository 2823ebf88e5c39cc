"""Run-folder files on their error paths: unusable checkpoints, NaN in JSON, broken last.pt."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from sweeplab.errors import SweeplabError
from sweeplab.run_folder import Checkpoint, decide_start
from sweeplab.run_format import CHECKPOINTS, TRAINING_OUTPUTS, Summary, write_json


def test_unreadable_checkpoint_is_one_line_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "best.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(SweeplabError, match="is not a sweeplab checkpoint") as info:
        Checkpoint.load(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert "weights_only" not in str(info.value)  # never torch's advice to load unsafely


def test_a_torch_file_that_is_not_a_run_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(2)}, path)
    with pytest.raises(SweeplabError, match="not a sweeplab checkpoint"):
        Checkpoint.load(path)


def test_json_turns_nan_and_inf_into_null(tmp_path: Path) -> None:
    write_json(tmp_path / "summary.json", {"loss": math.nan, "lr": math.inf, "n": 3})
    assert json.loads((tmp_path / "summary.json").read_text()) == {
        "loss": None,
        "lr": None,
        "n": 3,
    }


def test_broken_last_checkpoint_means_a_fresh_start_clearing_every_training_output(
    tmp_path: Path,
) -> None:
    (tmp_path / CHECKPOINTS).mkdir()
    for name in set(TRAINING_OUTPUTS) - {CHECKPOINTS}:
        (tmp_path / name).write_text("from an earlier attempt")
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"PK\x03\x04 cut short")
    (tmp_path / "run.log").write_text("kept")
    assert decide_start(tmp_path, "abc").action == "fresh"
    assert [p.name for p in tmp_path.iterdir()] == ["run.log"]


def test_checkpoint_of_another_config_without_a_summary_is_refused(tmp_path: Path) -> None:
    Checkpoint(config={}, model={}, config_hash="x").save(tmp_path / "checkpoints" / "last.pt")
    with pytest.raises(SweeplabError, match="another config"):
        decide_start(tmp_path, "y")


def test_checkpoint_round_trips_through_a_weights_only_load(tmp_path: Path) -> None:
    saved = Checkpoint(
        config={"seed": 3}, model={"w": torch.ones(2)}, rng=torch.get_rng_state(), epoch=4,
        history=[{"epoch": 1, "split": "train", "loss": 0.5}],
    )  # fmt: skip
    saved.save(tmp_path / "last.pt")
    loaded = Checkpoint.load(tmp_path / "last.pt")
    assert loaded.epoch == 4 and loaded.config == {"seed": 3} and loaded.history == saved.history
    assert torch.equal(loaded.model["w"], torch.ones(2)) and torch.equal(loaded.rng, saved.rng)
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left


def test_summary_round_trips_and_a_partial_file_loads_with_the_rest_unset(tmp_path: Path) -> None:
    summary = Summary(config_hash="abc", seed=2, test_accuracy=0.9)
    summary.end("completed")
    summary.write(tmp_path)
    assert Summary.load(tmp_path) == summary
    (tmp_path / "summary.json").write_text('{"status": "failed", "extra": 1}')
    assert Summary.load(tmp_path) == Summary(status="failed")
    (tmp_path / "summary.json").write_text("[]")
    assert Summary.load(tmp_path) is None
