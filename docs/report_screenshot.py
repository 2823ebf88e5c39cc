"""The README's picture of a report: a real small sweep, its report.html, headless Chromium.

    python docs/report_screenshot.py                 # writes docs/images/report.png (~1 min)
    python docs/report_screenshot.py --report multirun/wd_vs_noise/report/report.html

The sweep is a 2 x 2 grid of weight decay and input noise on 3 seeds, 3 epochs on 10,000
FashionMNIST images, under the joblib launcher; its report is written at the sweep's end. Needs
Chromium (`apt-get install -y chromium`) or Chrome on the PATH.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ["regularization.weight_decay=0,1e-3", "regularization.noise_std=0,0.2", "seed=0,1,2",
         "epochs=3", "dataset.subset=10000", "hydra/launcher=joblib", "progress=false"]  # fmt: skip
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def small_sweep(workdir: Path) -> Path:
    """Run the small sweep in `workdir` (as multirun/small_grid); return its report.html."""
    sweep = "multirun/small_grid"  # the report's title names the folder as given
    command = [sys.executable, str(ROOT / "run.py"), "-m", *SWEEP, f"hydra.sweep.dir={sweep}"]
    subprocess.run(command, cwd=workdir, check=True, capture_output=True)
    return workdir / sweep / "report" / "report.html"


def screenshot(page: Path, png: Path, width: int = 1200, height: int = 1500) -> Path:
    """A headless-Chromium screenshot of the first `height` pixels of `page`."""
    browser = next((found for name in BROWSERS if (found := shutil.which(name))), None)
    if browser is None:
        raise SystemExit("no Chromium on the PATH: apt-get install -y chromium")
    png.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--window-size={width},{height}", f"--screenshot={png.resolve()}",
         page.resolve().as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return png


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--report", type=Path, help="an existing report.html (no sweep is run)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "report.png")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        page = args.report or small_sweep(Path(tmp))
        print(screenshot(page, args.out))


if __name__ == "__main__":
    main()
