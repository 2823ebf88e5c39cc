"""Where a run lives in a tracker, read from its folder's files alone: no tracker package and
no torch are imported, so a report links its rows to MLflow runs at the cost of two small
JSON files (`trackers.json` in the run folder, `.sweeplab/mlflow.json` in the sweep's)."""

from __future__ import annotations

import json
from pathlib import Path

from sweeplab.run_format import TRACKERS, sweep_folder

MLFLOW_SWEEP_STATE = Path(".sweeplab") / "mlflow.json"  # a sweep's parent run per MLflow store


def mlflow_url(uri: str, experiment: str, run_id: str | None = None) -> str | None:
    """A link into MLflow's web UI (a server's http(s) URI only) that opens the experiment's
    runs table in its "Model training" view, or one run; MLflow's own links open MLflow 3's
    GenAI overview."""
    if not uri.startswith(("http://", "https://")):
        return None
    page = f"runs/{run_id}" if run_id else "runs"
    return f"{uri.rstrip('/')}/#/experiments/{experiment}/{page}?workflowType=machine_learning"


def mlflow_run_urls(run_dir: Path) -> list[str]:
    """Links into MLflow's web UI to the runs that mirror one job folder of a sweep (read from
    its trackers.json and the sweep's parent-run record; none for a file store)."""
    sweep = sweep_folder(run_dir)
    try:
        stores = json.loads((sweep / MLFLOW_SWEEP_STATE).read_text()) if sweep else {}
        runs = json.loads((run_dir / TRACKERS).read_text()).get("mlflow", {})
    except (OSError, ValueError, AttributeError):
        return []
    urls = [
        mlflow_url(uri, str(stores[uri]["experiment_id"]), run_id)
        for uri, run_id in runs.items()
        if uri in stores
    ]
    return [url for url in urls if url]
