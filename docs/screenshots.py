"""The manual's pictures, made from real runs in headless Chromium: the top of a report.html,
one of its figures, MLflow's runs table of the same sweep, and optuna-dashboard on a search.

    python docs/screenshots.py                    # all four into docs/images/ (~3 min)
    python docs/screenshots.py --report multirun/wd_vs_noise/report/report.html  # report only

The sweep is a 3 x 2 grid of weight decay and input noise on 3 seeds, 3 epochs on 10,000
FashionMNIST images, under the joblib launcher, logged to an MLflow server started here (on
127.0.0.1, its store in a temporary folder); its report is written at the sweep's end. Needs
Chromium (`apt-get install -y chromium`) or Chrome on the PATH, and the trackers extra
(MLflow, whose aiohttp drives Chromium through its DevTools protocol to open a sweep's row).
The search is `hparams_search=fashion_optuna` with 12 trials of 2 epochs on 3,000 images;
its picture needs `pip install optuna-dashboard` (else it is left out, with a line saying so).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
SEARCH = [
    "hparams_search=fashion_optuna",
    "hydra.sweeper.n_trials=12",
    "epochs=2",
    "dataset.subset=3000",
    "progress=false",
    "hydra.sweep.dir=multirun/fashion_optuna",
]
SWEEP = ["regularization.weight_decay=0,1e-4,1e-3", "regularization.noise_std=0,0.2",
         "seed=0,1,2", "epochs=3", "dataset.subset=10000", "hydra/launcher=joblib",
         "progress=false"]  # fmt: skip
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# In MLflow's runs table: close the assistant panel, open the sweep's row to its jobs and
# widen the name column, as a person would.
MLFLOW_CLICKS = """
(() => {
  document.querySelector('button[aria-label="Close"]')?.click();
  document.querySelector('[data-component-id*="runnamecellrenderer"]')?.click();
  // widen the Run Name column by its resize handle, as a drag would
  const header = [...document.querySelectorAll('.ag-header-cell')]
    .find((cell) => /Run Name/.test(cell.textContent));
  const handle = header && header.querySelector('.ag-header-cell-resize');
  if (handle) {
    const box = handle.getBoundingClientRect();
    const at = (x) => ({bubbles: true, clientX: x, clientY: box.top + 5, button: 0, buttons: 1});
    handle.dispatchEvent(new MouseEvent('mousedown', at(box.left + 2)));
    for (const x of [60, 160, 200]) {
      document.dispatchEvent(new MouseEvent('mousemove', at(box.left + x)));
    }
    document.dispatchEvent(new MouseEvent('mouseup', at(box.left + 200)));
  }
  return document.querySelectorAll('.ag-row').length;
})()
"""


def browser() -> str:
    found = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    if found is None:
        raise SystemExit("no Chromium on the PATH: apt-get install -y chromium")
    return found


def small_sweep(workdir: Path, *extra: str) -> Path:
    """Run the small sweep in `workdir` (as multirun/wd_vs_noise); return its report.html."""
    sweep = "multirun/wd_vs_noise"  # the report's title names the folder as given
    command = [sys.executable, str(ROOT / "run.py"), "-m", *SWEEP, *extra,
               f"hydra.sweep.dir={sweep}"]  # fmt: skip
    subprocess.run(command, cwd=workdir, check=True, capture_output=True)
    return workdir / sweep / "report" / "report.html"


def screenshot(page: Path, png: Path, width: int = 1280, height: int = 1500) -> Path:
    """A headless-Chromium screenshot of the first `height` pixels of `page`."""
    png.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--window-size={width},{height}", f"--screenshot={png.resolve()}",
         page.resolve().as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return png


async def _driven_screenshot(port: int, url: str, script: str, png: Path) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/json/list") as answer:
            target = next(t for t in await answer.json() if t["type"] == "page")
        async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            ids = iter(range(1, 1000))

            async def call(method: str, **params: object) -> dict:
                number = next(ids)
                await ws.send_json({"id": number, "method": method, "params": params})
                async for message in ws:
                    data = json.loads(message.data)
                    if data.get("id") == number:
                        return data.get("result", {})
                raise RuntimeError(f"Chromium closed during {method}")

            await call("Page.navigate", url=url)
            await asyncio.sleep(8)  # MLflow's page loads its runs in several requests
            await call("Runtime.evaluate", expression=script)
            await asyncio.sleep(4)
            shot = await call("Page.captureScreenshot", format="png")
            png.write_bytes(base64.b64decode(shot["data"]))


def driven_screenshot(url: str, script: str, png: Path, width: int, height: int) -> Path:
    """A screenshot of `url` after `script` ran in it (clicks a person would make)."""
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        process = subprocess.Popen(
            [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--window-size={width},{height}", "--remote-debugging-port=0",
             f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            active = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + 30
            while not active.is_file() or not active.read_text().strip():
                if time.monotonic() > deadline:
                    raise SystemExit("Chromium did not open its DevTools port in 30 s")
                time.sleep(0.2)
            port = int(active.read_text().splitlines()[0])
            asyncio.run(_driven_screenshot(port, url, script, png))
        finally:
            process.kill()
            process.wait()
    return png


def serve(command: list[str], probe: str) -> tuple[subprocess.Popen, str]:
    """Start a web server (`command` + its port) on a free port of 127.0.0.1; return it and
    its address once `probe` (a path) answers."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    process = subprocess.Popen([*command, str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(uri + probe, timeout=2):
                return process, uri
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit(f"{command[0]} did not start") from None
            time.sleep(0.5)


def mlflow_server(folder: Path) -> tuple[subprocess.Popen, str]:
    """`mlflow server` on a free port of 127.0.0.1, its SQLite store in `folder`."""
    mlflow = Path(sys.executable).with_name("mlflow")
    return serve([str(mlflow), "server", "--host", "127.0.0.1", "--workers", "1",
                  "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
                  "--artifacts-destination", str(folder / "artifacts"), "--port"],
                 "/health")  # fmt: skip


def dashboard(work: Path, png: Path) -> Path | None:
    """A small search in `work`, shown by optuna-dashboard (None when it is not installed)."""
    found = shutil.which("optuna-dashboard") or shutil.which(
        "optuna-dashboard", path=str(Path(sys.executable).parent)
    )
    if found is None:
        print("optuna-dashboard is not installed (pip install optuna-dashboard): no picture")
        return None
    subprocess.run([sys.executable, str(ROOT / "run.py"), "-m", *SEARCH], cwd=work, check=True,
                   capture_output=True)  # fmt: skip
    journal = work / "multirun" / "fashion_optuna" / "study.journal"
    process, uri = serve([found, str(journal), "--host", "127.0.0.1", "--port"], "/api/studies")
    try:
        return driven_screenshot(f"{uri}/dashboard/studies/0", "0", png, 1400, 900)
    finally:
        process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--report", type=Path, help="an existing report.html (no sweep is run)")
    parser.add_argument("--out", type=Path, default=IMAGES)
    args = parser.parse_args()
    if args.report:
        print(screenshot(args.report, args.out / "report.png"))
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server, uri = mlflow_server(work)
        try:
            page = small_sweep(work, "logger=mlflow", f"logger.mlflow.tracking_uri={uri}")
            print(screenshot(page, args.out / "report.png", height=1500))
            figure = args.out / "report_learning_curves.png"
            print(shutil.copyfile(page.with_name("learning_curves.png"), figure))
            state = json.loads((page.parents[1] / ".sweeplab" / "mlflow.json").read_text())
            experiment = state[uri]["experiment_id"]
            table = f"{uri}/#/experiments/{experiment}/runs?workflowType=machine_learning"
            print(driven_screenshot(table, MLFLOW_CLICKS, args.out / "mlflow_runs.png",
                                    1400, 800))  # fmt: skip
        finally:
            server.kill()
        print(dashboard(work, args.out / "optuna_dashboard.png"))


if __name__ == "__main__":
    main()
