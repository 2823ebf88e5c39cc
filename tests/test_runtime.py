"""Device choice, thread counts per job, and the process's age for the start-up figure."""

from __future__ import annotations

import time

import pytest
import torch

from sweeplab import runtime
from sweeplab.errors import SweeplabError


def test_auto_device_is_cuda_when_present_else_cpu() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert runtime.pick_device("auto").type == expected


def test_a_device_torch_does_not_know_is_one_clear_line() -> None:
    with pytest.raises(SweeplabError, match="use auto, cpu or cuda"):
        runtime.pick_device("gpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_asking_for_cuda_without_a_gpu_is_one_clear_line() -> None:
    with pytest.raises(SweeplabError, match="device=auto"):
        runtime.pick_device("cuda")


@pytest.mark.parametrize(
    ("launcher", "cores", "threads"),
    [
        ({"n_jobs": -1}, 2, 1),  # joblib default: a job per core, one thread each
        ({"n_jobs": 2}, 8, 4),
        ({"n_jobs": 1}, 2, 2),
        ({"n_jobs": 16}, 4, 1),  # more jobs than cores still get one thread
        ({"cpus_per_task": 2}, 64, 2),  # submitit: the job's own CPUs
        ({"cpus_per_task": None}, 2, 0),
        ({}, 2, 0),  # the basic launcher: torch's default
    ],
)
def test_parallel_jobs_times_threads_never_exceed_the_cores(
    monkeypatch, launcher: dict, cores: int, threads: int
) -> None:
    monkeypatch.setattr(runtime, "available_cores", lambda: cores)
    assert runtime.threads_per_job(launcher) == threads


def test_process_age_is_positive_and_grows() -> None:
    first = runtime.seconds_since_process_start()
    time.sleep(0.05)
    second = runtime.seconds_since_process_start()
    if first is None:
        pytest.skip("no /proc here")
    assert first > 0 and second is not None and second >= first + 0.04


def test_process_age_is_none_without_proc(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreadable(self, *args, **kwargs) -> str:
        raise OSError(f"no such file: {self}")

    monkeypatch.setattr(runtime.Path, "read_text", unreadable)
    assert runtime.seconds_since_process_start() is None
