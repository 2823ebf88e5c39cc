"""Where and how a run executes: device, torch threads, seeding, memory layout, peak memory."""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sweeplab.errors import SweeplabError


def pick_device(name: str) -> torch.device:
    """`auto` means CUDA when present, else the CPU; anything else is taken as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise SweeplabError(f"invalid config: device={name!r}: use auto, cpu or cuda[:N]") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SweeplabError(f"device={name!r} but this machine has no CUDA GPU: use device=auto")
    return device


def set_threads(threads: int) -> None:
    """Set torch's intra-op thread count; 0 leaves torch's default."""
    if threads > 0:
        torch.set_num_threads(threads)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU generator for batch order and noise."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def set_up(threads: int, device: str, seed: int) -> torch.device:
    """What every mode does first: torch threads, the device, the seeds (before any model)."""
    set_threads(threads)
    chosen = pick_device(device)
    seed_everything(seed)
    return chosen


def seconds_since_process_start() -> float | None:
    """Wall seconds since this process started, interpreter start-up included (Linux's /proc;
    None elsewhere)."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime
    except (OSError, ValueError, IndexError):
        return None


def available_cores() -> int:
    """Cores this process may use (respects CPU affinity, e.g. under SLURM or taskset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_job(launcher: Any) -> int:
    """Torch threads for one job so that parallel jobs x threads <= cores (0: torch's default).

    Oversubscription (each of n parallel jobs using every core) is the usual reason a parallel
    sweep runs slower than a serial one.
    """
    cores = available_cores()
    n_jobs = launcher.get("n_jobs") if launcher is not None else None
    if n_jobs is not None:  # joblib: n_jobs parallel processes on this machine
        parallel = cores if n_jobs < 1 else min(n_jobs, cores)
        return max(1, cores // parallel)
    cpus_per_task = launcher.get("cpus_per_task") if launcher is not None else None
    if cpus_per_task:  # submitit: each job gets its own cpus_per_task
        return int(cpus_per_task)
    return 0


class JobLabel(logging.Filter):
    """Starts each of sweeplab's log lines with the sweep job's number (`[job 3]`), so that
    the lines of jobs that run side by side (hydra/launcher=joblib) can be told apart."""

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("sweeplab") and not getattr(record, "labelled", False):
            record.msg, record.labelled = f"{self.label} {record.msg}", True
        return True


def label_job_lines(label: str) -> None:
    """Label this job's lines on every handler Hydra set up for it (console and run.log)."""
    for handler in logging.getLogger().handlers:
        for old in [f for f in handler.filters if isinstance(f, JobLabel)]:
            handler.removeFilter(old)  # a process that runs several jobs, one after another
        handler.addFilter(JobLabel(label))


def memory_format(model: nn.Module, device: torch.device) -> torch.memory_format:
    """Channels-last (NHWC) for CPU convolutions, except where batch norm follows a conv.

    Measured on a 2-core Xeon, one training step at batch 256: classic LeNet-5 11.9k images/s
    NCHW against 19.8k NHWC; with batch norm right after each conv 10.8k NCHW against 6.6k NHWC
    (its NHWC CPU kernel is the slow part). Batch norm on pooled maps (`lenet5_bn`) is quick
    enough: 14k NHWC against 10.2k NCHW on a 2-core AMD EPYC.
    """
    modules = list(model.modules())  # in the order the layers are defined
    norm_after_conv = any(
        isinstance(first, nn.Conv2d) and isinstance(second, nn.BatchNorm2d)
        for first, second in pairwise(modules)
    )
    if device.type == "cpu" and not norm_after_conv:
        return torch.channels_last
    return torch.contiguous_format


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (in a basic-launcher sweep: the max
    over the jobs run so far, which share the process)."""
    import resource

    kilobytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB on Linux
    return round(kilobytes / 1024, 1)


# Stop a run at the next batch boundary: what SLURM (time limit, preemption), `docker stop`
# and systemd send, Ctrl-C, and the user signal batch systems use for a warning.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


class Interrupted(KeyboardInterrupt):
    """A stop signal reached the run; raised at the next batch boundary."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(self.name)


class StopSignals:
    """While installed, a stop signal sets a flag that `check` (called between batches)
    turns into `Interrupted`, so the run never stops half-way through writing a file.

    Under submitit (SLURM, or its local twin) submitit owns the signals: it requeues a
    preempted job on SIGUSR2 and ignores SIGTERM. Then `note(signum)` only records what
    happened and submitit's own handler runs as before.
    """

    def __init__(self, note: Callable[[int], None]) -> None:
        self.note = note
        self.received: int | None = None

    def check(self) -> None:
        if self.received is not None:
            raise Interrupted(self.received)

    def _stop(self, signum: int, frame: object) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.received = signum

    @contextmanager
    def installed(self) -> Iterator[StopSignals]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # signal handlers can only be set from the main thread
            return
        under_submitit = bool(os.environ.get("SUBMITIT_EXECUTOR"))
        signals = (signal.SIGTERM, signal.SIGUSR2) if under_submitit else STOP_SIGNALS
        previous = {signum: signal.getsignal(signum) for signum in signals}

        def noted(signum: int, frame: Any) -> None:
            self.note(signum)
            handler = previous[signum]
            if callable(handler):
                handler(signum, frame)
            elif handler == signal.SIG_DFL:  # what the signal would have done without us
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)

        for signum in signals:
            signal.signal(signum, noted if under_submitit else self._stop)
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


LIBRARIES = ("matplotlib", "PIL", "fontTools")  # their INFO lines would reach the console


def quiet_libraries() -> None:
    """Keep the libraries' own INFO lines out of the console and run.log (warnings stay)."""
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
