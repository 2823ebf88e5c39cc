"""Run-folder files on their error paths: unusable checkpoints, NaN in JSON, broken last.pt."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from sweeplab.errors import SweeplabError
from sweeplab.resume import decide_start
from sweeplab.run_folder import load_checkpoint, save_checkpoint, write_json


def test_unreadable_checkpoint_is_one_line_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "best.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(SweeplabError, match="cannot read checkpoint") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_torch_file_that_is_not_a_run_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(2)}, path)
    with pytest.raises(SweeplabError, match="not a sweeplab checkpoint"):
        load_checkpoint(path)


def test_json_turns_nan_and_inf_into_null(tmp_path: Path) -> None:
    write_json(tmp_path / "summary.json", {"loss": math.nan, "lr": math.inf, "n": 3})
    assert json.loads((tmp_path / "summary.json").read_text()) == {
        "loss": None,
        "lr": None,
        "n": 3,
    }


def test_broken_last_checkpoint_means_a_fresh_start(tmp_path: Path) -> None:
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"PK\x03\x04 cut short")
    (tmp_path / "metrics.csv").write_text("epoch,split\n1,train\n")
    assert decide_start(tmp_path, "abc").action == "fresh"
    assert not (tmp_path / "metrics.csv").exists()
    assert not (tmp_path / "checkpoints").exists()


def test_checkpoint_of_another_config_without_a_summary_is_refused(tmp_path: Path) -> None:
    save_checkpoint(
        tmp_path / "checkpoints" / "last.pt", {"model": {}, "config": {}, "config_hash": "x"}
    )
    with pytest.raises(SweeplabError, match="another config"):
        decide_start(tmp_path, "y")
