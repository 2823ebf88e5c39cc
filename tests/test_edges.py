"""The wrong turns a newcomer takes, each answered in one line by a real command: a dry run
checks what its jobs would, a key is found from its abbreviation, a group's options are listed,
a file that is not a checkpoint is named as such, and a run ends by saying where it went."""

from __future__ import annotations

from pathlib import Path

import pytest

from sweeplab.config import known_keys
from sweeplab.errors import closest_key
from tests.conftest import QUICK, run_cli


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def test_a_dry_run_stops_on_a_typo_with_the_jobs_line_and_leaves_no_folder(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    dry = run_cli("-m", "+regularization.wd=0,1e-3", "dry_run=true", f"hydra.sweep.dir={sweep}")
    assert dry.returncode == 2
    line = one_line(dry.stderr)
    assert line.startswith("sweeplab: error: invalid config: unknown key 'regularization.wd'")
    assert "did you mean regularization.weight_decay?" in line
    assert not sweep.exists()  # nothing made: not even the sweep folder
    # a correct dry run lists its jobs, and still makes no folder
    fine = run_cli("-m", "regularization.weight_decay=0,1e-3", "dry_run=true",
                   f"hydra.sweep.dir={sweep}")  # fmt: skip
    assert fine.returncode == 0 and "dry run of 2 jobs" in fine.stdout and not sweep.exists()


@pytest.mark.parametrize(
    ("typed", "meant"),
    [("regularization.wd", "regularization.weight_decay"), ("wd", "regularization.weight_decay"),
     ("bs", "batch_size"), ("noise", "regularization.noise_std"), ("lr", "optimizer.lr"),
     ("ls", "regularization.label_smoothing"), ("epoch", "epochs"),
     ("regularization.weigth_decay", "regularization.weight_decay")],
)  # fmt: skip
def test_did_you_mean_knows_abbreviations_before_spelling(typed: str, meant: str) -> None:
    assert closest_key(typed, known_keys()) == meant


def test_an_abbreviated_key_on_the_command_line_gets_the_key_it_abbreviates() -> None:
    result = run_cli("-m", "regularization.wd=0,1e-3", "dry_run=true")
    assert result.returncode == 2
    assert one_line(result.stderr) == (
        "sweeplab: error: unknown key 'regularization.wd': did you mean "
        "regularization.weight_decay?"
    )


@pytest.mark.parametrize(
    ("argument", "expected"),
    [("model=lenet6", "model=lenet6: no such option: did you mean lenet5? model is one of "),
     ("hparams_search=fashion_optuna1", "did you mean fashion_optuna? hparams_search is one of "
      "fashion_optuna (conf/hparams_search/)")],
)  # fmt: skip
def test_a_wrong_group_option_is_one_line_with_the_options(argument: str, expected: str) -> None:
    result = run_cli("-m" if "hparams" in argument else "--cfg", argument, *(
        ["job"] if "hparams" not in argument else ["dry_run=true"]
    ))  # fmt: skip
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert line.startswith("sweeplab: error: ") and expected in line
    assert "Config search path" not in result.stderr


def test_eval_of_a_file_that_is_no_checkpoint_says_so_without_unsafe_advice(
    tmp_path: Path,
) -> None:
    text = tmp_path / "notes.md"
    text.write_text("# not a checkpoint\n")
    result = run_cli("mode=eval", f"ckpt={text}", f"hydra.run.dir={tmp_path / 'eval'}")
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert f"{text} is not a sweeplab checkpoint" in line
    assert "checkpoints/best.pt" in line and "weights_only" not in line


def test_a_run_ends_by_naming_its_folder_and_keeps_third_party_info_out(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    result = run_cli(*QUICK, "figures=true", f"hydra.run.dir={folder}")
    assert result.returncode == 0, result.stderr[-2000:]
    last = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()][-1]
    assert str(folder) in last and "summary.json" in last
    assert "fontManager" not in result.stdout + result.stderr


def test_report_headers_wrap_at_dots_not_inside_a_key_and_speeds_print_whole() -> None:
    from analysis.page import header_breaks, number

    assert header_breaks("regularization.weight_decay") == "regularization.\u200bweight_decay"
    assert header_breaks("p_holm") == "p_holm"  # never p_ / holm
    assert header_breaks("train_seconds") == "train_\u200bseconds"  # whole words only
    assert header_breaks("p_equiv_holm") == "p_equiv_\u200bholm"  # never p_ / equiv
    assert number(1170.4) == "1170" and number(23_456.7) == "23,457"  # not 1.17e+03


def test_a_sweep_outside_the_working_folder_is_named_by_its_own_name_in_trackers(
    tmp_path: Path,
) -> None:
    from sweeplab.trackers import display_name

    assert display_name(tmp_path / "sweeps" / "x") == "x"  # not /tmp/.../sweeps/x
    assert display_name(tmp_path / "multirun" / "wd") == "multirun/wd"


def test_a_mistyped_objective_stops_a_search_before_its_first_trial(tmp_path: Path) -> None:
    sweep = tmp_path / "search"
    result = run_cli("-m", "hparams_search=fashion_optuna", "objective=val_acc",
                     "hydra.sweeper.n_trials=1", f"hydra.sweep.dir={sweep}")  # fmt: skip
    assert result.returncode == 2
    assert one_line(result.stderr) == (
        "sweeplab: error: invalid config: objective='val_acc': did you mean val_accuracy? "
        "use val_accuracy, params, train_seconds, or a list of them"
    )
    assert not (sweep / "study.journal").exists()  # no study, so no failed trial in it
