"""Shared fixtures: composing the real config tree, and running run.py as a user would."""

from __future__ import annotations

import fcntl
import gzip
import os
import pickle
import shutil
import subprocess
import sys

# pytest-xdist's workers share the cores: each test process, and every run.py it starts, keeps
# to one torch thread (as sweeplab's joblib jobs do) rather than each spinning one per core.
# Set before torch is imported; a value the caller set stays.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from sweeplab.config import register_configs
from sweeplab.datasets import DATASETS

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
# Small but real: FashionMNIST subsets keep a 1-epoch run to a second or two.
QUICK = ["dataset.subset=1024", "batch_size=64", "epochs=1", "progress=false"]


@pytest.fixture(scope="session", autouse=True)
def _schemas() -> None:
    register_configs()


# The order tests start in: services and slow tests first, so that pytest-xdist's workers begin
# with the long ones and end together on short ones (the same order on every worker).
FIRST = ("service", "benchmark", "slow")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        return next((i for i, mark in enumerate(FIRST) if item.get_closest_marker(mark)), 3)

    items.sort(key=rank)  # stable: files and tests keep their order within a rank


# The fast tier's budget per test (docs/development.md): a fast-tier test over it is named at
# the end of the run, so that the one who adds it sees it; never a timed assertion.
FAST_BUDGET_SECONDS = 20.0
_over_budget: list[tuple[str, float]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    tier_marks = set(FIRST) & set(report.keywords)
    if report.when == "call" and not tier_marks and report.duration > FAST_BUDGET_SECONDS:
        _over_budget.append((report.nodeid, report.duration))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _over_budget:
        return
    terminalreporter.section("fast-tier tests over their budget")
    terminalreporter.write_line(
        f"{len(_over_budget)} test(s) without a slow, service or benchmark mark took more than "
        f"{FAST_BUDGET_SECONDS:.0f} s: make them cheaper, or mark them (docs/development.md)"
    )
    for nodeid, seconds in sorted(_over_budget, key=lambda item: -item[1]):
        terminalreporter.write_line(f"  {seconds:6.1f} s  {nodeid}")


def compose_config(*overrides: str, with_hydra: bool = False) -> DictConfig:
    """Compose conf/config.yaml with overrides, exactly as run.py would; `with_hydra` keeps
    the `hydra` node (checked against the launcher's and sweeper's schemas)."""
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        return compose("config", overrides=list(overrides), return_hydra_config=with_hydra)


@pytest.fixture
def make_cfg() -> Callable[..., DictConfig]:
    """`compose_config` as a fixture, for tests that compose the run's config."""
    return compose_config


def metrics_without_timing(run_dir: Path) -> pd.DataFrame:
    """metrics.csv less its wall-clock columns: what must repeat exactly for a seed."""
    return pd.read_csv(run_dir / "metrics.csv").drop(columns=["seconds", "images_per_second"])


def completed_cli_run(run_dir: Path, *args: str) -> Path:
    """`python run.py ARGS` into `run_dir`, which must succeed."""
    result = run_cli(*args, f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr
    return run_dir


def run_cli(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python run.py ARGS` in a subprocess, output captured."""
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def run_sweep(
    sweep_dir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python run.py -m ARGS` into `sweep_dir` on tiny FashionMNIST subsets."""
    return run_cli("-m", *QUICK_SWEEP, f"hydra.sweep.dir={sweep_dir}", *args, env=env)


QUICK_SWEEP = ["dataset.subset=512", "batch_size=64", "progress=false", "figures=false"]
GRID = ["regularization.weight_decay=0,0.01", "regularization.noise_std=0,0.3", "seed=0,1"]


def made_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], None]
) -> Path:
    """The folder `name`, made by `make(folder)` once per test session however many pytest-xdist
    workers ask for it: the first makes it under a lock, the others wait and reuse it. Tests
    read it; a test that changes files copies it first."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the session's folder, above each worker's own
    folder, made = root / f"once-{name}", root / f"once-{name}.made"
    with (root / f"once-{name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not made.exists():
            shutil.rmtree(folder, ignore_errors=True)
            make(folder)
            made.touch()
    return folder


@pytest.fixture(scope="session")
def joblib_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 2 x 2 x 2-seed multirun under Hydra's joblib launcher, 1 epoch per job."""

    def sweep(folder: Path) -> None:
        # torch's own default thread count, so that the joblib launcher's one thread per job
        # (test_sweeps) is sweeplab's doing, not OMP_NUM_THREADS's
        env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
        result = run_sweep(folder, "epochs=1", "hydra/launcher=joblib", *GRID, env=env)
        assert result.returncode == 0, result.stderr[-3000:]

    return made_once(tmp_path_factory, "joblib-sweep", sweep)


@pytest.fixture
def sweep_copy(joblib_sweep: Path, tmp_path: Path) -> Path:
    """A copy of the joblib sweep (without its report) that a test may change."""
    target = tmp_path / "sweep"
    shutil.copytree(joblib_sweep, target, ignore=shutil.ignore_patterns("report"))
    return target


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real 1-epoch run of the defaults on 1024 FashionMNIST images, through run.py."""
    return made_once(
        tmp_path_factory, "quick-run", lambda folder: completed_cli_run(folder, *QUICK)
    )


# --- small files in the real on-disk formats of the datasets that cannot be downloaded here ---


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (gzipped when the name ends in .gz)."""
    magic = 0x0800 + array.ndim
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)


def write_small_idx_dataset(
    folder: Path, name: str, n_train: int = 60, n_test: int = 20, gz: bool = True
) -> dict[str, np.ndarray]:
    """The four IDX files of dataset `name` in torchvision's layout, pixels drawn at random."""
    spec = DATASETS[name]
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    arrays = {}
    for (images, labels), n in zip(
        (spec.files[:2], spec.files[2:]), (n_train, n_test), strict=True
    ):
        size = spec.image_size
        arrays[images] = rng.integers(0, 256, (n, size, size))
        arrays[labels] = rng.integers(0, spec.num_classes, n)
        write_idx(folder / (images + suffix), arrays[images])
        write_idx(folder / (labels + suffix), arrays[labels])
    return arrays


def write_small_cifar10(root: Path, per_batch: int = 12) -> dict[str, dict]:
    """cifar-10-batches-py/ as torchvision's download leaves it: pickled dicts of uint8 rows."""
    folder = root / DATASETS["cifar10"].folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    batches = {}
    for name in DATASETS["cifar10"].files:
        batch = {
            "batch_label": name,
            "data": rng.integers(0, 256, (per_batch, 3 * 32 * 32), dtype=np.uint8),
            "labels": rng.integers(0, 10, per_batch).tolist(),
        }
        (folder / name).write_bytes(pickle.dumps(batch))
        batches[name] = batch
    meta = {"label_names": list(DATASETS["cifar10"].classes)}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return batches


@contextmanager
def lock_holder(folder: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the run folder's lock (as a run working in it does)."""
    code = (
        "import sys, time\nfrom pathlib import Path\nfrom sweeplab.run_folder import folder_lock\n"
        "with folder_lock(Path(sys.argv[1])):\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        holder.kill()
        holder.wait()
