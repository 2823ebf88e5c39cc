"""Trackers with the real tools: an MLflow tracking server on 127.0.0.1 (SQLite store) that
the tests start and stop, TensorBoard's own event reader, real sweeps and a real kill -9."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import QUICK_SWEEP, ROOT, run_cli, run_sweep

pytest.importorskip(
    "mlflow", reason='the trackers extra is not installed: pip install -e ".[trackers]"'
)
pytest.importorskip("tensorboard", reason='pip install -e ".[trackers]"')

from mlflow import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

SWEEP = ["regularization.weight_decay=0,0.01", "seed=0,1", "epochs=2"]
WARNING = "the run goes on without it"  # the MLflow tracker's one warning line


class MLflowServer:
    """`mlflow server` with a SQLite store in a test folder; stop() and start() again keep it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        mlflow = Path(sys.executable).with_name("mlflow")
        self.process = subprocess.Popen(
            [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(self.port),
             "--backend-store-uri", f"sqlite:///{self.folder / 'mlflow.db'}",
             "--artifacts-destination", str(self.folder / "artifacts"), "--workers", "1"],
            stdout=subprocess.DEVNULL, stderr=(self.folder / "server.log").open("ab"),
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            assert self.process.poll() is None, (self.folder / "server.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "mlflow server did not start in 90 s"
            time.sleep(0.3)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)  # the server and its workers
            self.process.wait(timeout=30)


def _started_server(folder: Path) -> Iterator[MLflowServer]:
    folder.mkdir(exist_ok=True)
    server = MLflowServer(folder)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MLflowServer]:
    """One server for the module's tests (each reads back only its own runs)."""
    yield from _started_server(tmp_path_factory.mktemp("mlflow"))


@pytest.fixture
def own_mlflow_server(tmp_path: Path) -> Iterator[MLflowServer]:
    """A server of the test's own, for a test that stops and starts it."""
    yield from _started_server(tmp_path / "mlflow")


def runs_of(client: MlflowClient, under: Path) -> list:
    """The runs of every experiment that mirror a folder at or below `under` (the test's own)."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, max_results=1000)
    return [r for r in runs if Path(r.data.tags.get("sweeplab.folder", "")).is_relative_to(under)]


def epoch_ms(stamp: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(stamp).timestamp() * 1000)


def steps(client: MlflowClient, run_id: str, key: str) -> list[int]:
    return sorted(metric.step for metric in client.get_metric_history(run_id, key))


@pytest.mark.xdist_group("mlflow")  # one worker, one server (the module's)
@pytest.mark.service
@pytest.mark.slow
def test_a_sweep_logs_one_parent_run_and_a_nested_run_per_job(
    mlflow_server: MLflowServer, tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep"
    logger = ["logger=mlflow", f"logger.mlflow.tracking_uri={mlflow_server.uri}"]
    result = run_sweep(sweep, *SWEEP, *logger)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(mlflow_server.uri)
    runs = runs_of(client, sweep)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 4
    (parent,) = parents
    assert parent.info.status == "FINISHED"  # closed at the sweep's end
    experiment = client.get_experiment(parent.info.experiment_id)
    assert experiment.name == sweep.name  # the sweep's own name (its folder is not below here)
    # MLflow 3 opens it on the runs table, not its GenAI overview: the tag, and the link the
    # sweep's end prints (MLflow's own "View experiment" links land on the GenAI overview)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    table = f"{mlflow_server.uri}/#/experiments/{experiment.experiment_id}/runs"
    assert f"MLflow: {table}?workflowType=machine_learning" in result.stdout
    assert "View experiment at" not in result.stdout
    names = sorted(r.info.run_name for r in children)  # by what differs between the jobs
    assert names == [f"weight_decay={wd},seed={seed}"
                     for wd in ("0", "0.01") for seed in (0, 1)]  # fmt: skip
    assert parent.data.tags["sweeplab.runs"] == "4 (4 completed)"
    report = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert report == {"report/report.html", "report/report.md"}  # the sweep's answer
    assert parent.data.tags["sweeplab.best_run"] in names
    ends = [
        epoch_ms(json.loads(p.read_text())["finished_at"]) for p in sweep.glob("*/summary.json")
    ]
    assert parent.info.end_time == max(ends)  # its last job's end, not a rerun's
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    swept = {
        (r.data.params["regularization.weight_decay"], r.data.params["seed"]) for r in children
    }
    assert swept == {("0.0", "0"), ("0.0", "1"), ("0.01", "0"), ("0.01", "1")}
    for run in children:
        assert run.info.status == "FINISHED" and run.data.tags["status"] == "completed"
        assert {"config_hash", "seed", "device"} <= set(run.data.tags)
        assert steps(client, run.info.run_id, "val_accuracy") == [1, 2]
        assert steps(client, run.info.run_id, "test_accuracy") == [2]
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"summary.json", "metrics.csv"} <= artifacts
        hydra = {a.path for a in client.list_artifacts(run.info.run_id, "hydra")}
        assert hydra == {"hydra/config.yaml", "hydra/overrides.yaml"}  # what composed the run
        assert "seed=" in run.data.tags["sweeplab.overrides"]
        folder = Path(run.data.tags["sweeplab.folder"])
        assert json.loads((folder / "trackers.json").read_text())["mlflow"] == {
            mlflow_server.uri: run.info.run_id
        }
        # the report links the job's row to this MLflow run
        link = f"{table}/{run.info.run_id}?workflowType=machine_learning"
        assert f"[MLflow]({link})" in (sweep / "report" / "report.md").read_text()
        made = json.loads((folder / "summary.json").read_text())["provenance"]
        assert run.data.tags["sweeplab.code_version"] == made["code_version"]
        assert run.data.tags["sweeplab.cpu"] == made["cpu"]
        assert run.data.tags.get("mlflow.source.git.commit") == made["commit"]  # None: no git
    again = run_sweep(sweep, *SWEEP, *logger)  # every run completed: skipped, nothing logged
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(runs_of(client, sweep)) == 5
    assert all(steps(client, r.info.run_id, "val_accuracy") == [1, 2] for r in children)


@pytest.mark.service
@pytest.mark.slow
def test_a_server_that_stops_mid_sweep_costs_no_result_and_export_fills_it_once(
    own_mlflow_server: MLflowServer, tmp_path: Path
) -> None:
    mlflow_server = own_mlflow_server
    sweep = tmp_path / "sweep"
    logger = ["logger=mlflow", f"logger.mlflow.tracking_uri={mlflow_server.uri}"]
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "-m", *QUICK_SWEEP, "dataset.subset=4096",
         f"hydra.sweep.dir={sweep}", *SWEEP, *logger],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not list(sweep.glob("*/summary.json")):  # the first job is done: stop the server
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.05)
    mlflow_server.stop()
    stdout, stderr = process.communicate(timeout=600)
    output = stdout + stderr  # Hydra logs to stdout
    assert process.returncode == 0, stderr[-3000:]
    folders = sorted(p.parent for p in sweep.glob("*/summary.json"))
    assert len(folders) == 4
    for folder in folders:  # every run folder is complete
        assert json.loads((folder / "summary.json").read_text())["status"] == "completed"
        assert len((folder / "metrics.csv").read_text().splitlines()) == 1 + 2 * 2 + 1
    warnings = [line for line in output.splitlines() if WARNING in line]
    per_run = [(f / "run.log").read_text().count(WARNING) for f in folders]
    assert 2 <= len(warnings) == sum(per_run) and max(per_run) == 1, output[-3000:]

    mlflow_server.start()
    export = [sys.executable, "analysis/export.py", str(sweep), "--to", "mlflow",
              "--tracking-uri", mlflow_server.uri]  # fmt: skip
    first = subprocess.run(export, cwd=ROOT, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-3000:]
    client = MlflowClient(mlflow_server.uri)

    def state() -> dict[str, tuple]:
        return {
            r.info.run_id: (r.info.status, tuple(steps(client, r.info.run_id, "val_accuracy")),
                            tuple(steps(client, r.info.run_id, "train_loss")),
                            len(client.list_artifacts(r.info.run_id)))
            for r in runs_of(client, sweep)
        }  # fmt: skip

    after_export = state()
    children = [s for s in after_export.values() if s[1]]
    assert len(after_export) == 5 and len(children) == 4  # the parent and one run per job
    assert all(s[:3] == ("FINISHED", (1, 2), (1, 2)) and s[3] >= 2 for s in children)
    for run in runs_of(client, sweep):  # an exported run keeps its own start and end times
        folder = Path(run.data.tags["sweeplab.folder"])
        if (folder / "summary.json").is_file():
            made = json.loads((folder / "summary.json").read_text())
            assert run.info.end_time == epoch_ms(made["finished_at"])
    again = subprocess.run(export, cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert state() == after_export  # nothing created twice


@pytest.mark.xdist_group("mlflow")  # one worker, one server (the module's)
@pytest.mark.service
@pytest.mark.slow
def test_a_run_killed_and_resumed_is_one_mlflow_run_and_one_tensorboard_log(
    mlflow_server: MLflowServer, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    args = ["dataset.subset=8192", "batch_size=64", "epochs=4", "progress=false", "figures=false",
            "logger=many", f"logger.mlflow.tracking_uri={mlflow_server.uri}",
            f"hydra.run.dir={run_dir}"]  # fmt: skip
    process = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *args], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 300
    while not (run_dir / "checkpoints" / "last.pt").exists():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.2)  # into epoch 2
    process.kill()
    process.wait(timeout=60)
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming" in again.stdout + again.stderr

    client = MlflowClient(mlflow_server.uri)
    (run,) = runs_of(client, run_dir)  # one MLflow run, continued
    assert run.info.status == "FINISHED"
    assert steps(client, run.info.run_id, "val_accuracy") == [1, 2, 3, 4]
    assert steps(client, run.info.run_id, "train_accuracy") == [1, 2, 3, 4]

    events = EventAccumulator(str(run_dir))  # TensorBoard's own reader
    events.Reload()
    for tag in ("train/loss", "val/accuracy", "lr"):
        assert [e.step for e in events.Scalars(tag)] == [1, 2, 3, 4], tag
    assert [e.step for e in events.Scalars("test/accuracy")] == [4]


def session_start(run_dir: Path):
    """The run's HParams session, as TensorBoard's own reader gives it."""
    events = EventAccumulator(str(run_dir))
    events.Reload()
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    return HParamsPluginData.FromString(content).session_start_info


def hparams_keys(run_dir: Path) -> set[str]:
    return set(session_start(run_dir).hparams)


@pytest.mark.slow
def test_a_sweeps_tensorboard_runs_share_their_hparams_keys_and_export_adds_nothing(
    tmp_path: Path,
) -> None:
    sweep = tmp_path / "sweep"
    result = run_sweep(sweep, "model=lenet5,mlp", "seed=0,1", "epochs=1", "logger=tensorboard")
    assert result.returncode == 0, result.stderr[-3000:]
    folders = sorted(p.parent for p in sweep.glob("*/summary.json"))
    keys = [hparams_keys(folder) for folder in folders]
    assert len(folders) == 4 and all(k == keys[0] for k in keys)  # lenet5 and mlp alike
    for folder in folders:  # what made the run, in TensorBoard's Text tab
        events = EventAccumulator(str(folder))
        events.Reload()
        assert "provenance/text_summary" in events.Tags()["tensors"]
    assert {"model", "seed", "optimizer.lr", "regularization.weight_decay"} <= keys[0]
    start = session_start(folders[0])
    assert start.hparams["tta"].WhichOneof("kind") == "bool_value"  # a boolean, not 1.0
    assert start.hparams["tta"].bool_value is True and "variant" not in start.hparams  # no "null"
    assert start.group_name == folders[0].name  # the trial id: the job folder, whole
    events = EventAccumulator(str(folders[0]))
    events.Reload()
    experiment = HParamsPluginData.FromString(
        events.PluginTagToContent("hparams")["_hparams_/experiment"]
    ).experiment
    assert experiment.metric_infos[0].name.tag == "val/accuracy"  # what the table shows first
    events_before = sorted(p.name for p in sweep.glob("*/events.out.tfevents.*"))
    export = subprocess.run(
        [sys.executable, "analysis/export.py", str(sweep), "--to", "tensorboard"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert export.returncode == 0 and "wrote 0 of 4 run(s)" in export.stdout, export.stderr
    assert sorted(p.name for p in sweep.glob("*/events.out.tfevents.*")) == events_before


@pytest.mark.slow
def test_export_writes_tensorboard_logs_for_a_sweep_made_without_a_logger(
    joblib_sweep: Path, tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep"
    shutil.copytree(joblib_sweep, sweep)
    command = [sys.executable, "analysis/export.py", str(sweep), "--to", "tensorboard"]
    first = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert first.returncode == 0 and "wrote 8 of 8 run(s)" in first.stdout, first.stderr
    for folder in sorted(p.parent for p in sweep.glob("*/summary.json")):
        events = EventAccumulator(str(folder))
        events.Reload()
        assert [e.step for e in events.Scalars("val/accuracy")] == [1]
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert "wrote 0 of 8 run(s)" in again.stdout


def test_a_missing_tracker_package_is_one_line_before_any_work(tmp_path: Path) -> None:
    blocked = tmp_path / "site"
    blocked.mkdir()
    (blocked / "mlflow.py").write_text("raise ImportError('blocked', name='mlflow')\n")
    env = {**os.environ, "PYTHONPATH": str(blocked)}
    result = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "logger=mlflow", f"hydra.run.dir={tmp_path / 'r'}"],
        cwd=ROOT, capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "sweeplab: error: logger: the tracker's package is not installed (mlflow): "
        'pip install -e ".[trackers]"'
    )
    assert not (tmp_path / "r" / "metrics.csv").exists()
