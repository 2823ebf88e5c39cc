"""What made a run: its code, its data and its machine (summary.json's `provenance`).

Written when a run starts and kept through a resume, so that "what made this number?" has an
answer later, as Sacred's run record and MLflow's source tags give one. The code version is a
hash of what decides results (the library, the entry point and conf/), computed from the files
themselves, so it is the same with or without git; git adds the commit and whether the tree
was dirty (the diff itself is saved beside the summary). A rerun skips a finished run only
when its code version and data fingerprint are this command's (`run_folder.decide_start`).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import socket
import subprocess
import sys
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[2]  # src/sweeplab/provenance.py -> the project
# What decides a run's numbers, relative to the project: not docs, tests or benchmarks.
SOURCES = ("src/sweeplab", "run.py", "conf")
SOURCE_SUFFIXES = (".py", ".yaml", ".yml")
# The packages whose versions can move a run's numbers (or how it ran): distribution -> module.
PACKAGES = {
    "torch": "torch", "torchvision": "torchvision", "numpy": "numpy", "hydra-core": "hydra",
    "omegaconf": "omegaconf", "optuna": "optuna", "scipy": "scipy",
}  # fmt: skip
DIFF = "provenance.diff"  # the uncommitted change, beside summary.json, when the tree was dirty
UNKNOWN = "unknown"  # what a report shows for a run written before provenance existed


def source_files(root: Path = PROJECT) -> list[Path]:
    """The files whose contents make the code version, sorted by their path."""
    files: list[Path] = []
    for name in SOURCES:
        path = root / name
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files += [
                p
                for p in path.rglob("*")
                if p.is_file() and p.suffix in SOURCE_SUFFIXES and "__pycache__" not in p.parts
            ]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


@cache
def code_version(root: Path = PROJECT) -> str:
    """A short hash of every source file's path and bytes (the same with or without git)."""
    digest = hashlib.sha256()
    for path in source_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


@cache
def git_state(root: Path = PROJECT) -> dict[str, Any]:
    """The commit, whether the tree differs from it, and the diff (None: not a git checkout)."""
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None, "diff": None, "diff_sha256": None, "git": "no git"}
    status = _git(root, "status", "--porcelain", "--untracked-files=no") or ""
    diff = (_git(root, "diff", "HEAD", "--binary") or "") if status.strip() else ""
    return {
        "commit": commit.strip(),
        "dirty": bool(status.strip()),
        "diff": diff or None,
        "diff_sha256": hashlib.sha256(diff.encode()).hexdigest()[:12] if diff else None,
        "git": "git",
    }


@cache
def cpu_model() -> str:
    """The CPU as `lscpu` names it ("AMD EPYC", "Intel(R) Xeon(R) Processor"), else /proc."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        match = re.search(r"^Model name:\s*(.+)$", out, flags=re.M)
        if match:
            return match.group(1).strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    try:
        text = Path("/proc/cpuinfo").read_text()
        match = re.search(r"^model name\s*:\s*(.+)$", text, flags=re.M)
        if match:
            return match.group(1).strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or UNKNOWN


def package_versions() -> dict[str, str | None]:
    """Python's and each of PACKAGES' version: the imported module's own (`2.14.1+cu130`, with
    its build), else the installed distribution's (None: not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name, module in PACKAGES.items():
        imported = getattr(sys.modules.get(module), "__version__", None)
        try:
            versions[name] = str(imported or metadata.version(name))
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def fingerprint_files(files: list[Path], cache_dir: Path) -> str:
    """SHA-256 of the data files' bytes, in order (first 16 hex). Cached in `cache_dir` under
    the files' paths, sizes and modification times, so only the first run reads them whole."""
    key = hashlib.sha256()
    for path in files:
        stat = path.stat()
        key.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    cached = cache_dir / f"fingerprint-{key.hexdigest()[:16]}.txt"
    try:
        return cached.read_text().strip()
    except OSError:
        pass
    digest = hashlib.sha256()
    for path in files:
        with path.open("rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    fingerprint = digest.hexdigest()[:16]
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".{cached.name}.{os.getpid()}")
        tmp.write_text(fingerprint + "\n")
        tmp.replace(cached)
    except OSError:
        pass  # a read-only cache: the files are read again next time
    return fingerprint


def record(threads: int, device: str, data: str | None) -> dict[str, Any]:
    """The provenance of a run starting now in this process (`data`: its fingerprint)."""
    git = git_state()
    return {
        "code_version": code_version(),
        "commit": git["commit"],
        "dirty": git["dirty"],
        "diff_sha256": git["diff_sha256"],
        "git": git["git"],
        "data_fingerprint": data,
        "packages": package_versions(),
        "cpu": cpu_model(),
        "threads": threads,
        "accelerator": device if device.startswith("cuda") else None,
        "host": socket.gethostname(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }


def save_diff(run_dir: Path) -> None:
    """The uncommitted change the run was made with, as `provenance.diff` (when dirty)."""
    diff = git_state()["diff"]
    if diff:
        (run_dir / DIFF).write_text(diff)


def provenance_markdown(provenance: dict[str, Any]) -> str:
    """The record as a two-column Markdown table (TensorBoard's Text tab shows it)."""
    flat = {k: v for k, v in provenance.items() if k != "packages"}
    flat.update({f"{name} version": v for name, v in (provenance.get("packages") or {}).items()})
    rows = [f"| {key} | {json.dumps(value) if not isinstance(value, str) else value} |"
            for key, value in flat.items()]  # fmt: skip
    return "\n".join(["| what | value |", "|---|---|", *rows])
