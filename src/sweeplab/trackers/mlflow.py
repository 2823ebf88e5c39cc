"""MLflow: one MLflow run per job, a sweep's jobs nested under one parent run.

Params: the checked config, flattened. Metrics: each metrics.csv row at `step = epoch`
(`train_loss`, `val_accuracy`, `lr`, ...), `test_loss` / `test_accuracy` at the last epoch.
Tags: status, config_hash, seed, device. Artifacts: summary.json, metrics.csv, the figures
(and checkpoints with `log_checkpoints`). The run's id is kept in the run folder
(`trackers.json`), so a resumed run continues its MLflow run, and every write first asks
MLflow what it has, so nothing is logged twice: the live run and `analysis/export.py` share
`sync`. The parent run of a sweep is found or made under a file lock in the sweep folder, so
jobs in other processes or on SLURM nodes nest under the same one.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from sweeplab.config import MLflowConfig, RunConfig, as_container
from sweeplab.hooks import EpochEnd, RunHook
from sweeplab.run_format import (
    CHECKPOINTS,
    CONFIG,
    CONFUSION_MATRIX,
    LEARNING_CURVES,
    METRICS,
    OVERRIDES,
    SUMMARY,
    TEST_SAMPLES,
    TRACKERS,
    Summary,
    read_overrides,
    sweep_folder,
    write_json,
)
from sweeplab.tracker_links import MLFLOW_SWEEP_STATE, mlflow_url
from sweeplab.trackers import display_name, epoch_metrics, swept_name, tracked_config

log = logging.getLogger(__name__)

# A tracker that is down must cost seconds, not the minutes of MLflow's default retries.
# MLflow's own "View experiment at" lines link to MLflow 3's GenAI overview; sweeplab prints
# links that open the runs table (`mlflow_url`) instead.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
                 "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}  # fmt: skip
# A pruned run ended as its search meant it to: FINISHED, with `sweeplab.status: pruned`.
RUN_STATUS = {"completed": "FINISHED", "pruned": "FINISHED", "interrupted": "KILLED"}  # else FAILED
# MLflow 3 opens an experiment on its GenAI overview unless told it holds training runs.
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}
FOLDER_TAG = "sweeplab.folder"  # the absolute path of the run (or sweep) folder it mirrors
METRIC_BATCH = 1000  # MLflow's limit of entities in one log_batch
PARAM_BATCH = 100


def tracking_uri(configured: str | None) -> str:
    """logger.mlflow.tracking_uri, else $MLFLOW_TRACKING_URI, else ./mlflow.db (made absolute,
    so jobs on other nodes or in other folders share it)."""
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI")
    return uri or f"sqlite:///{Path('mlflow.db').resolve()}"


def client_for(uri: str) -> MlflowClient:
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    return MlflowClient(tracking_uri=uri)


def experiment_id(client: MlflowClient, name: str) -> str:
    """The experiment `name`, made when missing (another process may make it at once)."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name, tags=EXPERIMENT_TAGS)
    except Exception:
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def _find_run(client: MlflowClient, experiment: str, folder: Path) -> str | None:
    """The run that mirrors `folder`, by its tag (runs made by an earlier export, say)."""
    value = str(folder.resolve()).replace("'", "\\'")
    runs = client.search_runs([experiment], f"tags.`{FOLDER_TAG}` = '{value}'", max_results=1)
    return runs[0].info.run_id if runs else None


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_suffix(".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def parent_run(client: MlflowClient, uri: str, experiment: str, sweep: Path) -> str:
    """The sweep's parent run in this store: found in the sweep folder or by its tag, else
    made; one process at a time decides."""
    state_path = sweep / MLFLOW_SWEEP_STATE
    with _locked(state_path):
        state = json.loads(state_path.read_text()) if state_path.is_file() else {}
        known = state.get(uri)
        if known and client.get_run(known["parent_run_id"]).info.run_id:
            return known["parent_run_id"]
        parent = (
            _find_run(client, experiment, sweep)
            or client.create_run(
                experiment, tags={FOLDER_TAG: str(sweep.resolve())}, run_name=display_name(sweep)
            ).info.run_id
        )
        state[uri] = {"experiment_id": experiment, "parent_run_id": parent}
        write_json(state_path, state)
        return parent


def sweep_outcome(sweep: Path) -> tuple[dict[str, str], int | None]:
    """The parent run's summary of its jobs (counts, the best run by val accuracy) as tags,
    and when the last job ended (ms)."""
    paths = sorted(sweep.glob(f"*/{SUMMARY}"))
    jobs = [_read_json(path) for path in paths]
    statuses = [str(job.get("status")) for job in jobs]
    counts = ", ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(statuses))
    tags = {"sweeplab.runs": f"{len(jobs)} ({counts})"}
    done = [
        (job["best_val_accuracy"], path.parent)
        for job, path in zip(jobs, paths, strict=True)
        if job.get("status") == "completed" and job.get("best_val_accuracy") is not None
    ]
    if done:
        value, folder = max(done, key=lambda item: item[0])
        tags |= {"sweeplab.best_run": swept_name(folder), "sweeplab.best_val_accuracy": str(value)}
    ends = [ms for job in jobs if (ms := _epoch_ms(job.get("finished_at"))) is not None]
    return tags, max(ends) if ends else None


def close_parent(sweep: Path, failed: bool) -> None:
    """At a sweep's end: its parent run FINISHED (FAILED when a job failed), in each store,
    with its jobs' counts and best run, ended when its last job ended."""
    state_path = sweep / MLFLOW_SWEEP_STATE
    if not state_path.is_file():
        return
    tags, ended = sweep_outcome(sweep)
    for uri, known in json.loads(state_path.read_text()).items():
        try:
            client = client_for(uri)
            parent = known["parent_run_id"]
            client.log_batch(parent, tags=[RunTag(k, v) for k, v in tags.items()])
            client.set_terminated(parent, "FAILED" if failed else "FINISHED", ended)
            if link := mlflow_url(uri, known["experiment_id"]):
                log.info("MLflow: %s", link)
        except Exception as err:
            log.warning("MLflow at %s: could not close the sweep's parent run: %s", uri, err)


def attach_report(sweep: Path, report: Path) -> None:
    """The sweep's report (report.html, report.md) as artifacts of its parent run (`report/`),
    in each store; a store that is down costs one warning line."""
    state_path = sweep / MLFLOW_SWEEP_STATE
    if not state_path.is_file():
        return
    for uri, known in json.loads(state_path.read_text()).items():
        try:
            client = client_for(uri)
            for name in ("report.html", "report.md"):
                if (report / name).is_file():
                    client.log_artifact(known["parent_run_id"], str(report / name), "report")
        except Exception as err:
            log.warning("MLflow at %s: could not attach the sweep's report: %s", uri, err)


class MirroredRun:
    """A run folder's MLflow run: found (trackers.json, then the folder tag) or made."""

    def __init__(self, client: MlflowClient, uri: str, run_dir: Path, experiment_name: str | None):
        self.client, self.uri, self.run_dir = client, uri, run_dir
        sweep = sweep_folder(run_dir)
        name = experiment_name or display_name(sweep or run_dir)
        self.experiment = experiment_id(client, name)
        self.parent = parent_run(client, uri, self.experiment, sweep) if sweep else None
        known = _read_state(run_dir).get("mlflow", {})  # {tracking uri: run id}
        run_id = known.get(uri)
        self.run_id = run_id or _find_run(client, self.experiment, run_dir) or self._create()
        _write_state(run_dir, {"mlflow": {**known, uri: self.run_id}})

    def _create(self) -> str:
        tags = {FOLDER_TAG: str(self.run_dir.resolve())}
        overrides = read_overrides(self.run_dir) or []
        if overrides:  # the job's own command line, as Hydra recorded it
            tags["sweeplab.overrides"] = " ".join(overrides)
        if self.parent:
            tags["mlflow.parentRunId"] = self.parent
        summary = _read_json(self.run_dir / SUMMARY)
        started = _epoch_ms(summary.get("started_at"))  # an export: when the run began
        name = swept_name(self.run_dir) if self.parent else self.run_dir.name
        return self.client.create_run(
            self.experiment, tags=tags, run_name=name, start_time=started
        ).info.run_id

    def params(self, config: dict[str, Any]) -> None:
        """The config, once: a run that has params already keeps them."""
        if self.client.get_run(self.run_id).data.params:
            return
        params = [Param(key, str(value)) for key, value in config.items()]
        for i in range(0, len(params), PARAM_BATCH):
            self.client.log_batch(self.run_id, params=params[i : i + PARAM_BATCH])

    def rows(self, rows: list[dict[str, Any]], check: bool = True) -> None:
        """metrics.csv rows at step = epoch; with `check`, only the (metric, step) pairs MLflow
        does not have yet."""
        wanted = [(key, int(row["epoch"]), value) for row in rows
                  for key, value in epoch_metrics(row).items()]  # fmt: skip
        if check:
            have = {
                (key, metric.step)
                for key in {key for key, _, _ in wanted}
                for metric in self.client.get_metric_history(self.run_id, key)
            }
            wanted = [item for item in wanted if item[:2] not in have]
        now = int(time.time() * 1000)
        metrics = [Metric(key, value, now, step) for key, step, value in wanted]
        for i in range(0, len(metrics), METRIC_BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + METRIC_BATCH])

    def finish(self, summary: dict[str, Any], log_checkpoints: bool) -> None:
        """The end: test metrics, tags, artifacts not yet uploaded, the status."""
        if summary.get("test_accuracy") is not None and summary.get("epochs"):
            test = {"epoch": summary["epochs"], "split": "test",
                    "loss": summary["test_loss"], "accuracy": summary["test_accuracy"]}  # fmt: skip
            self.rows([test])
        status = str(summary.get("status"))
        made = summary.get("provenance") or {}
        tags = {"status": status, "sweeplab.status": status,
                "config_hash": summary.get("config_hash"),
                "seed": summary.get("seed"), "device": summary.get("device"),
                # what made the run: MLflow's own source tag, then sweeplab's record
                "mlflow.source.git.commit": made.get("commit"),
                **{f"sweeplab.{key}": made.get(key) for key in PROVENANCE_TAGS}}  # fmt: skip
        self.client.log_batch(
            self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items() if v is not None]
        )
        have = {info.path for info in self.client.list_artifacts(self.run_id)}
        names = [METRICS, SUMMARY, LEARNING_CURVES, TEST_SAMPLES, CONFUSION_MATRIX]
        for name in names:
            if (self.run_dir / name).is_file() and name not in have:
                self.client.log_artifact(self.run_id, str(self.run_dir / name))
        # the composed config and the overrides that made it
        if (self.run_dir / CONFIG).is_file() and "hydra" not in have:
            for path in (CONFIG, OVERRIDES):
                if (self.run_dir / path).is_file():
                    self.client.log_artifact(self.run_id, str(self.run_dir / path), "hydra")
        if log_checkpoints and (self.run_dir / CHECKPOINTS).is_dir() and CHECKPOINTS not in have:
            self.client.log_artifact(self.run_id, str(self.run_dir / CHECKPOINTS))
        ended = _epoch_ms(summary.get("finished_at"))  # the run's own end, not the export's
        self.client.set_terminated(self.run_id, RUN_STATUS.get(status, "FAILED"), ended)
        if self.parent is None and (link := mlflow_url(self.uri, self.experiment, self.run_id)):
            log.info("MLflow: %s", link)  # a sweep's jobs: its end names the runs table


# summary.json's provenance fields that a run's MLflow tags carry (as `sweeplab.<field>`)
PROVENANCE_TAGS = ("code_version", "dirty", "data_fingerprint", "cpu", "threads", "host")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _epoch_ms(stamp: str | None) -> int | None:
    """summary.json's ISO time as MLflow's milliseconds since the epoch (None: unknown)."""
    from datetime import datetime

    try:
        return int(datetime.fromisoformat(str(stamp)).timestamp() * 1000) if stamp else None
    except ValueError:
        return None


def _read_state(run_dir: Path) -> dict[str, Any]:
    return _read_json(run_dir / TRACKERS)


def _write_state(run_dir: Path, update: dict[str, Any]) -> None:
    write_json(run_dir / TRACKERS, {**_read_state(run_dir), **update})


def sync(
    uri: str,
    run_dir: Path,
    config: dict[str, Any],
    rows: list[dict[str, Any]],
    summary: dict[str, Any] | None,
    experiment_name: str | None = None,
    log_checkpoints: bool = False,
) -> str:
    """Bring MLflow up to a run folder's files; return the run id (analysis/export.py)."""
    run = MirroredRun(client_for(uri), uri, run_dir, experiment_name)
    run.params(config)
    run.rows(rows)
    if summary is not None and summary.get("status") not in (None, "running"):
        run.finish(summary, log_checkpoints)
    return run.run_id


class MLflowTracker(RunHook):
    """`logger=mlflow`: the run's MLflow run, epoch by epoch. MLflow's calls run in one
    background thread, in order, so training never waits for the store (opening a SQLite
    store takes most of a second, a server may be slow); the run's end waits for them. Any
    MLflow error warns once; the run then trains on without it, and analysis/export.py can
    fill MLflow later."""

    def __init__(self, settings: MLflowConfig) -> None:
        self.settings = settings
        self.uri = tracking_uri(settings.tracking_uri)
        self.run: MirroredRun | None = None
        self.broken = False
        self.calls = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow")

    def _later(self, action: str, call: Any) -> None:
        self.calls.submit(self._guarded, action, call)

    def _guarded(self, action: str, call: Any) -> None:
        if self.broken:
            return
        try:
            call()
        except Exception as err:
            self.broken = True
            reason = f"{type(err).__name__}: {err}".splitlines()[0][:300]
            log.warning(
                "MLflow at %s failed (%s: %s); the run goes on without it and keeps its files: "
                "python analysis/export.py <run or sweep folder> --to mlflow fills MLflow later",
                self.uri,
                action,
                reason,
            )

    def start(self, run: RunConfig, run_dir: Path, history: list[dict[str, Any]]) -> None:
        config, rows = tracked_config(as_container(run)), list(history)

        def begin() -> None:
            client = client_for(self.uri)
            self.run = MirroredRun(client, self.uri, run_dir, self.settings.experiment_name)
            self.run.params(config)
            client.update_run(self.run.run_id, status="RUNNING")
            self.run.rows(rows)  # what a resumed run logged before, only where missing

        self._later("starting the run", begin)

    def epoch_end(self, end: EpochEnd) -> str | None:
        rows = [end.row("train"), end.row("val")]
        self._later(f"epoch {end.epoch}", lambda: self.run and self.run.rows(rows, check=False))
        return None

    def end(self, summary: Summary, run_dir: Path) -> None:
        fields = json.loads((run_dir / SUMMARY).read_text())
        finish = self.settings.log_checkpoints
        self._later("ending the run", lambda: self.run and self.run.finish(fields, finish))
        self.calls.shutdown(wait=True)
