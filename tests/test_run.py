"""End to end: run.py writes the run-folder contract; eval/predict; determinism; bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from sweeplab import train
from sweeplab.config import check_config, config_hash
from sweeplab.epoch import evaluate
from sweeplab.inference import scored_with_tta
from sweeplab.run_folder import Checkpoint
from sweeplab.train import train_and_evaluate
from tests.conftest import (
    QUICK,
    completed_cli_run,
    metrics_without_timing,
    run_cli,
    write_small_idx_dataset,
)


@pytest.fixture
def trained(quick_run: Path) -> Path:
    """One real 1-epoch run of the defaults on 1024 FashionMNIST images, through run.py."""
    return quick_run


def test_run_writes_hydra_config_and_overrides(trained: Path) -> None:
    config = yaml.safe_load((trained / ".hydra" / "config.yaml").read_text())
    assert config["model"]["name"] == "lenet5" and config["dataset"]["subset"] == 1024
    assert "epochs=1" in yaml.safe_load((trained / ".hydra" / "overrides.yaml").read_text())


def test_metrics_csv_has_train_and_val_per_epoch_and_test_at_the_end(trained: Path) -> None:
    metrics = pd.read_csv(trained / "metrics.csv")
    assert list(metrics.columns[:6]) == ["epoch", "split", "loss", "accuracy", "lr", "seconds"]
    assert list(zip(metrics.epoch, metrics.split, strict=True)) == [
        (1, "train"),
        (1, "val"),
        (1, "test"),
    ]
    assert metrics.accuracy.between(0, 1).all() and (metrics.loss > 0).all()
    assert (metrics.seconds > 0).all()


def test_summary_json_holds_the_contract_fields(trained: Path) -> None:
    summary = json.loads((trained / "summary.json").read_text())
    metrics = pd.read_csv(trained / "metrics.csv")
    test_row = metrics[metrics.split == "test"].iloc[0]
    assert summary["status"] == "completed" and summary["error"] is None
    assert summary["test_accuracy"] == pytest.approx(test_row.accuracy, abs=1e-7)
    assert summary["test_loss"] == pytest.approx(test_row.loss, rel=1e-6)
    assert summary["best_val_accuracy"] == pytest.approx(metrics.accuracy[1], abs=1e-7)
    assert summary["best_epoch"] == 1 and summary["params"] == 61_728  # lenet5_bn
    assert summary["train_seconds"] > 0 and summary["images_per_second"] > 0
    split = ("startup", "data", "train", "eval", "figures")
    assert all(summary[f"{part}_seconds"] > 0 for part in split), summary
    # Start-up counts from the process's start: at least the interpreter and torch's import.
    started, finished = (pd.Timestamp(summary[key]) for key in ("started_at", "finished_at"))
    assert sum(summary[f"{part}_seconds"] for part in split) <= (
        (finished - started).total_seconds() + summary["startup_seconds"] + 1
    )
    assert len(summary["config_hash"]) == 16
    # Better than chance (10 %) after one epoch on 1024 images: the loop really learns.
    assert summary["test_accuracy"] > 0.3


def test_checkpoints_load_with_weights_only(trained: Path) -> None:
    for name in ("last.pt", "best.pt"):
        state = torch.load(trained / "checkpoints" / name, weights_only=True)
        assert state["epoch"] == 1
        assert all(isinstance(value, torch.Tensor) for value in state["model"].values())
        assert any(key.startswith("features.0") for key in state["model"])
        assert (
            state["config_hash"]
            == json.loads((trained / "summary.json").read_text())["config_hash"]
        )
    assert not list((trained / "checkpoints").glob(".*tmp"))  # no temp file left behind


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("learning_curves.png", (1000, 400)),  # loss and accuracy side by side
        ("test_samples.png", (1100, 270)),  # five images, 2.2 x 2.7 inches each
        ("confusion_matrix.png", (800, 650)),
    ],
)
def test_figures_are_drawn_at_their_layout_size_with_content(
    trained: Path, name: str, size: tuple[int, int]
) -> None:
    from PIL import Image

    with Image.open(trained / name) as image:
        assert image.size == size
        low, high = image.convert("L").getextrema()
    assert high - low > 100  # not a blank canvas


def test_eval_mode_reproduces_the_test_accuracy(trained: Path, tmp_path: Path) -> None:
    ckpt = trained / "checkpoints" / "last.pt"
    result = run_cli(
        "mode=eval", f"ckpt={ckpt}", "dataset.subset=1024", f"hydra.run.dir={tmp_path}"
    )
    assert result.returncode == 0, result.stderr
    evaluation = json.loads((tmp_path / "eval.json").read_text())
    summary = json.loads((trained / "summary.json").read_text())
    assert evaluation["test_accuracy"] == pytest.approx(summary["test_accuracy"], abs=1e-7)
    assert set(evaluation["per_class_accuracy"]) <= {"T-shirt/top", "Trouser", "Pullover",
        "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}  # fmt: skip
    assert "accuracy" in result.stdout and "Sneaker" in result.stdout
    assert f"saved {tmp_path / 'eval.json'}" in result.stdout  # where the result went
    assert "Sneaker" in (tmp_path / "run.log").read_text()  # the run folder keeps what it said


@pytest.mark.slow
def test_eval_scores_a_checkpoint_as_its_run_did_with_or_without_tta(tmp_path: Path) -> None:
    # Trained without flips or TTA; eval composes the default (tta=true) and must not use it.
    run_dir = completed_cli_run(tmp_path / "run", *QUICK, "tta=false", "regularization.hflip=false")
    ckpt = run_dir / "checkpoints" / "last.pt"
    result = run_cli("mode=eval", f"ckpt={ckpt}", *QUICK[:1], f"hydra.run.dir={tmp_path / 'e'}")
    assert result.returncode == 0, result.stderr
    evaluation = json.loads((tmp_path / "e" / "eval.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert evaluation["test_accuracy"] == pytest.approx(summary["test_accuracy"], abs=1e-7)


def test_a_checkpoint_from_before_tta_existed_is_scored_without_it(trained: Path) -> None:
    checkpoint = Checkpoint.load(trained / "checkpoints" / "last.pt")
    assert scored_with_tta(checkpoint)  # the default recipe's run
    del checkpoint.config["tta"]  # as in checkpoints written before the key existed
    assert not scored_with_tta(checkpoint)


def test_predict_mode_shows_five_test_images(trained: Path, tmp_path: Path) -> None:
    ckpt = trained / "checkpoints" / "best.pt"
    result = run_cli("mode=predict", f"ckpt={ckpt}", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    predictions = pd.read_csv(tmp_path / "predictions.csv")
    assert len(predictions) == 5 and predictions.confidence.between(0, 1).all()
    assert (tmp_path / "predictions.png").stat().st_size > 0
    assert result.stdout.count("test image") == 5
    assert (tmp_path / "run.log").read_text().count("test image") == 5


def test_eval_with_a_checkpoint_of_another_model_is_one_clear_line(trained: Path) -> None:
    ckpt = trained / "checkpoints" / "best.pt"
    result = run_cli("mode=eval", f"ckpt={ckpt}", "model=mlp")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "add model=lenet5" in result.stderr


def test_eval_with_other_model_fields_names_each_field_that_differs(trained: Path) -> None:
    ckpt = trained / "checkpoints" / "best.pt"
    result = run_cli("mode=eval", f"ckpt={ckpt}", "model.channels=[8,16]", "model.dropout=0.3")
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "add model.channels=[6,16] model.dropout=0.0" in result.stderr


def test_eval_with_a_checkpoint_of_another_input_size_is_one_clear_line(trained: Path) -> None:
    result = run_cli("mode=eval", f"ckpt={trained / 'checkpoints' / 'best.pt'}", "input_size=32")
    assert result.returncode == 2 and "input_size=28" in result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["optimizer.lr=0"], "optimizer.lr=0"),
        (["epochs=0"], "epochs=0"),
        (["regularization.noise_std=-1"], "regularization.noise_std"),
        (["mode=eval"], "needs a checkpoint"),
        (["mode=eval", "ckpt=/nonexistent/best.pt"], "does not exist"),
        (["model=alexnet", "input_size=28"], "use input_size=227"),
        (["dataset.subset=100", "batch_size=512"], "batch_size=512"),
        (["dataset=mnist", "dataset.root=/nonexistent"], "dataset.download=true"),
        (["regularization.weigth_decay=1e-4"], "did you mean regularization.weight_decay?"),
        (["-m", "noise_std=0,0.1"], "'noise_std': did you mean regularization.noise_std?"),
    ],
)
def test_bad_input_stops_with_one_line_before_training(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    result = run_cli(*args, f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("sweeplab: error:")
    assert result.stderr.strip().count("\n") == 0 and expected in result.stderr
    assert not (tmp_path / "metrics.csv").exists()
    if "did you mean" in expected:  # answered before Hydra composes: no run folder at all
        assert not tmp_path.exists() or not any(tmp_path.iterdir())
    elif "mode=eval" not in args:  # a training run's folder says how it ended
        summary = json.loads((tmp_path / "summary.json").read_text())
        assert summary["status"] == "failed" and expected in summary["error"]


def test_same_seed_gives_identical_metrics(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg(*QUICK, "epochs=2", "figures=false", "regularization.noise_std=0.1")
    first = train_and_evaluate(cfg, tmp_path / "a")
    second = train_and_evaluate(cfg, tmp_path / "b")
    metrics_a = metrics_without_timing(tmp_path / "a")
    metrics_b = metrics_without_timing(tmp_path / "b")
    pd.testing.assert_frame_equal(metrics_a, metrics_b)
    assert first.test_accuracy == second.test_accuracy
    other = train_and_evaluate(make_cfg(*QUICK, "seed=1", "figures=false"), tmp_path / "c")
    assert other.config_hash != first.config_hash
    assert pd.read_csv(tmp_path / "c" / "metrics.csv").loss[0] != metrics_a.loss[0]


def test_hflip_is_seeded_and_leaves_val_and_test_images_alone(
    make_cfg, tmp_path: Path, monkeypatch
) -> None:
    seen: list[torch.Tensor] = []
    evaluate = train.evaluate

    def recording_evaluate(model, x, y, *args):
        seen.append(x[:4].clone())
        return evaluate(model, x, y, *args)

    monkeypatch.setattr(train, "evaluate", recording_evaluate)
    cfg = make_cfg(*QUICK, "figures=false", "regularization.hflip=true")
    flipped = train_and_evaluate(cfg, tmp_path / "a")
    again = train_and_evaluate(cfg, tmp_path / "b")
    plain = make_cfg(*QUICK, "figures=false", "regularization.hflip=false")
    train_and_evaluate(plain, tmp_path / "c")
    assert flipped.test_accuracy == again.test_accuracy
    assert (
        metrics_without_timing(tmp_path / "a").loss[0]
        != metrics_without_timing(tmp_path / "c").loss[0]
    )
    # val (then test) batches of the flipped and the plain runs are the same images
    assert all(torch.equal(seen[i], seen[i + 4]) for i in range(2))


@pytest.fixture
def digits_root(tmp_path: Path) -> Path:
    """MNIST's four IDX files (random digits) in torchvision's layout, written by the test."""
    write_small_idx_dataset(tmp_path / "digits" / "MNIST" / "raw", "mnist", n_train=96, n_test=32)
    return tmp_path / "digits"


def test_digits_train_and_score_without_flips_unless_asked(
    make_cfg, digits_root: Path, tmp_path: Path, monkeypatch, caplog
) -> None:
    used: list[tuple[str, bool]] = []
    train_epoch, evaluate = train.train_epoch, train.evaluate

    def recording_train_epoch(model, optimizer, scheduler, x, y, settings, **kwargs):
        used.append(("hflip", settings.hflip))
        return train_epoch(model, optimizer, scheduler, x, y, settings, **kwargs)

    def recording_evaluate(model, x, y, batch_size, amp, tta):
        used.append(("tta", tta))
        return evaluate(model, x, y, batch_size, amp, tta)

    monkeypatch.setattr(train, "train_epoch", recording_train_epoch)
    monkeypatch.setattr(train, "evaluate", recording_evaluate)
    digits = ["dataset=mnist", f"dataset.root={digits_root}", "dataset.val_size=16",
              "batch_size=16", "epochs=1", "progress=false", "figures=false"]  # fmt: skip
    with caplog.at_level("WARNING"):
        train_and_evaluate(make_cfg(*digits), tmp_path / "plain")
    assert used == [("hflip", False), ("tta", False), ("tta", False)]  # train, val, test
    assert not [r for r in caplog.records if "mirror" in r.getMessage()]
    saved = Checkpoint.load(tmp_path / "plain" / "checkpoints" / "last.pt").config
    assert (saved["regularization"]["hflip"], saved["tta"]) == (False, False)

    used.clear()
    with caplog.at_level("WARNING"):
        train_and_evaluate(make_cfg(*digits, "regularization.hflip=true"), tmp_path / "asked")
    assert used[0] == ("hflip", True) and ("tta", False) in used  # an explicit value wins
    warnings = [r.getMessage() for r in caplog.records if "mirror" in r.getMessage()]
    assert len(warnings) == 1 and "regularization.hflip=true on mnist" in warnings[0]


@pytest.mark.parametrize(
    ("dataset", "flips"),
    [("fashion", True), ("cifar10", True), ("mnist", False), ("kmnist", False), ("emnist", False)],
)
def test_flips_and_flip_tta_follow_the_dataset_and_cfg_job_shows_them(
    make_cfg, dataset: str, flips: bool
) -> None:
    cfg = make_cfg(f"dataset={dataset}")
    assert (cfg.regularization.hflip, cfg.tta) == (flips, flips)  # what --cfg job prints
    studied = make_cfg(f"dataset={dataset}", "+experiment=wd_vs_noise")
    assert (studied.regularization.hflip, studied.tta) == (False, False)  # the study's pin
    assert make_cfg(f"dataset={dataset}", "tta=true").tta is True


def test_cfg_job_prints_the_flips_a_digits_run_will_use() -> None:
    result = run_cli("dataset=mnist", "--cfg", "job")
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert (config["regularization"]["hflip"], config["tta"]) == (False, False)


def test_nan_loss_stops_the_run_as_diverged_keeping_what_was_written(
    make_cfg, tmp_path: Path, monkeypatch
) -> None:
    real_train_epoch = train.train_epoch

    def poisoned_in_epoch_2(model, *args, description: str, **kwargs):
        if description.startswith("epoch 2/"):
            with torch.no_grad():
                next(model.parameters()).fill_(float("nan"))
        return real_train_epoch(model, *args, description=description, **kwargs)

    monkeypatch.setattr(train, "train_epoch", poisoned_in_epoch_2)
    cfg = make_cfg(*QUICK, "epochs=3", "figures=false")
    summary = train_and_evaluate(cfg, tmp_path)
    assert summary.status == "diverged" and "epoch 2" in summary.error
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["status"] == "diverged" and on_disk["best_epoch"] == 1
    assert on_disk["config_hash"] == config_hash(check_config(cfg))
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert list(zip(metrics.epoch, metrics.split, strict=True)) == [
        (1, "train"),
        (1, "val"),
        (2, "train"),
    ]
    assert torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 1


def test_a_crash_writes_a_failed_summary(make_cfg, tmp_path: Path, monkeypatch) -> None:
    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(train, "evaluate", crash)
    with pytest.raises(RuntimeError):
        train_and_evaluate(make_cfg(*QUICK, "figures=false"), tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and "simulated crash" in summary["error"]
    assert len(pd.read_csv(tmp_path / "metrics.csv")) == 1  # the train row was kept


def test_summary_mode_prints_the_layer_table_and_trains_nothing(tmp_path: Path) -> None:
    args = ("mode=summary", "model=lenet5_classic_lecun")  # at its native 32x32
    result = run_cli(*args, f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    assert "MaskedConv2d" in result.stdout and "[1, 16, 10, 10]" in result.stdout
    assert "sweeplab parameter count: 60,806" in result.stdout
    assert "Total mult-adds (M): " in result.stdout and "Units." not in result.stdout
    assert "60,806" in (tmp_path / "model_summary.txt").read_text()
    assert not (tmp_path / "metrics.csv").exists() and not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_a_one_cycle_schedule_of_a_few_steps_trains(make_cfg, tmp_path: Path, steps: int) -> None:
    # OneCycleLR divides by its phase lengths; 4 steps with 25 % warm-up used to divide by 0.
    cfg = make_cfg(*QUICK, "scheduler=onecycle", f"dataset.subset={64 * steps}", "figures=false")
    summary = train_and_evaluate(cfg, tmp_path)
    assert summary.status == "completed"


@pytest.mark.slow
def test_compile_and_amp_runs_complete_and_report_compile_time(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg(*QUICK, "compile=true", "amp=true", "dataset.subset=256", "figures=false")
    summary = train_and_evaluate(cfg, tmp_path)
    assert summary.status == "completed" and summary.compile_seconds > 0
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert not any(key.startswith("_orig_mod") for key in state["model"])  # plain keys


def test_prediction_figures_wrap_into_rows_of_five(tmp_path: Path) -> None:
    from sweeplab import figures

    images, labels = torch.rand(12, 1, 28, 28), torch.arange(12) % 10
    fig = figures.sample_predictions(
        images, labels, labels, tuple("0123456789"), tmp_path / "p.png"
    )
    assert tuple(fig.get_size_inches()) == pytest.approx((11.0, 8.1))  # 5 columns, 3 rows
    assert sum(ax.get_visible() for ax in fig.axes) == 12


def test_learning_curves_of_a_one_epoch_run_mark_the_point_on_a_whole_epoch(
    trained: Path, tmp_path: Path
) -> None:
    from sweeplab import figures

    fig = figures.learning_curves(trained / "metrics.csv", tmp_path / "curves.png")
    for ax in fig.axes:
        assert list(ax.get_xticks()) == [1]
        assert all(line.get_marker() == "o" for line in ax.lines if len(line.get_xdata()))
    loss, accuracy = fig.axes
    assert loss.get_yscale() == "linear" and accuracy.get_ylabel() == "accuracy (%)"
    points = [y for line in accuracy.lines for y in line.get_ydata()]
    assert points and all(1 < y <= 100 for y in points)  # percent, as the console prints


def test_flip_tta_scores_an_image_and_its_mirror_image_alike() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10))
    x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    plain = evaluate(model, x, y, batch_size=16)
    assert not torch.equal(plain.predictions, evaluate(model, x.flip(3), y, 16).predictions)
    tta, mirrored = evaluate(model, x, y, 16, tta=True), evaluate(model, x.flip(3), y, 16, tta=True)
    assert torch.equal(tta.predictions, mirrored.predictions)
    assert tta.loss == pytest.approx(mirrored.loss, rel=1e-6)


def test_help_points_to_the_key_reference_and_says_what_regularization_none_leaves_on() -> None:
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    assert "docs/configuration.md explains every key" in result.stdout
    assert "README.md explains every key" not in result.stdout
    assert "regularization: none means no weight decay" in result.stdout
    assert "mirror flips and\nflip TTA follow the dataset" in result.stdout


def test_eval_takes_a_sweep_jobs_folder_as_printed_and_the_model_from_its_checkpoint(
    make_cfg, tmp_path: Path
) -> None:
    job = tmp_path / "sweep" / "model=mlp,seed=0"  # a sweep's job folder: = and , in its name
    summary = train_and_evaluate(make_cfg(*QUICK, "model=mlp", "figures=false"), job)
    result = run_cli("mode=eval", f"ckpt={job}", "figures=false", *QUICK[:1],
                     f"hydra.run.dir={tmp_path / 'e'}")  # fmt: skip
    assert result.returncode == 0, result.stderr  # no quoting, no model=mlp retyped
    evaluation = json.loads((tmp_path / "e" / "eval.json").read_text())
    assert evaluation["test_accuracy"] == pytest.approx(summary.test_accuracy, abs=1e-7)
    assert "its run used dataset.subset" not in result.stdout
    whole = run_cli("mode=eval", f"ckpt={job}", "figures=false", f"hydra.run.dir={tmp_path / 'w'}")
    assert whole.returncode == 0, whole.stderr  # all 10,000 test images: it says so
    assert "on 10000 test images" in whole.stdout
    assert "its run used dataset.subset=1024, so its test accuracy was on other" in whole.stdout
    predicted = run_cli("mode=predict", f"ckpt={job / 'checkpoints' / 'best.pt'}",
                        f"hydra.run.dir={tmp_path / 'p'}")  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr
    assert predicted.stdout.count("test image") == 5


# metrics.csv of `python run.py dataset.subset=1024 batch_size=64 epochs=2 threads=1 seed=3`,
# recorded before train.py was reorganised (AMD EPYC, Zen 5, 2026-12-07): a change of how the
# loop is written must not change what it computes. Other CPUs round floats differently, so
# the check allows a rounding's worth (and one or two flipped images of 1,024), no more.
PINNED = [  # epoch, split, loss, accuracy, lr
    (1, "train", 1.483963, 0.49609375, 0.0069134295),
    (1, "val", 0.97779429, 0.66601562, 0.0069134295),
    (2, "train", 0.74405754, 0.72949219, 4.2815522e-05),
    (2, "val", 0.72943205, 0.734375, 4.2815522e-05),
    (2, "test", 0.74048781, 0.72363281, 4.2815522e-05),
]


def test_a_fixed_config_gives_the_metrics_recorded_before_the_loop_was_reorganised(
    tmp_path: Path,
) -> None:
    args = ["dataset.subset=1024", "batch_size=64", "epochs=2", "threads=1", "seed=3"]
    run = completed_cli_run(tmp_path / "run", *args, "progress=false", "figures=false")
    metrics = pd.read_csv(run / "metrics.csv")
    assert [tuple(r) for r in metrics[["epoch", "split"]].itertuples(index=False)] == [
        (epoch, split) for epoch, split, *_ in PINNED
    ]
    for (_, _, loss, accuracy, lr), row in zip(PINNED, metrics.itertuples(), strict=True):
        assert row.loss == pytest.approx(loss, abs=2e-3)
        assert row.accuracy == pytest.approx(accuracy, abs=2.5 / 1024)
        assert row.lr == pytest.approx(lr, rel=1e-6)
