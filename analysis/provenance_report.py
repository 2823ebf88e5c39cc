"""The report's account of what made its runs (summary.json's `provenance`) and of itself.

A report pools runs into one interval and one verdict only knowingly: it names every code
version, data fingerprint, CPU and host it holds, warns at the top when runs of different code
or data meet, marks each comparison that mixes them, and never averages timings across CPUs.
"""

from __future__ import annotations

import socket
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from analysis.collect import MADE_BY, PROVENANCE
from analysis.stats import ReportError
from sweeplab.provenance import code_version, cpu_model, git_state

CODE, DATA, CPU = (PROVENANCE + key for key in ("code_version", "data_fingerprint", "cpu"))
# What a comparison must not mix to be clean, and how the report names it.
MUST_AGREE = {CODE: "code versions", DATA: "data fingerprints"}
PACKAGES_SHOWN = ("python", "torch", "torchvision", "numpy", "hydra-core", "optuna")


def restrict(runs: pd.DataFrame, version: str | None) -> pd.DataFrame:
    """The runs of one code version (`--code-version`, a prefix is enough)."""
    if version is None:
        return runs
    kept = runs[runs[CODE].astype(str).str.startswith(version)]
    if kept.empty:
        held = ", ".join(sorted(runs[CODE].astype(str).unique()))
        raise ReportError(f"--code-version {version}: no run has it; these runs have {held}")
    kept = kept.copy()
    kept.attrs = runs.attrs
    return kept


def warnings(runs: pd.DataFrame) -> list[str]:
    """Lines for the top of the report: several code versions or data fingerprints."""
    lines = []
    for column, name in MUST_AGREE.items():
        counts = runs[column].astype(str).value_counts()
        if len(counts) > 1:
            held = ", ".join(f"{value} ({n} runs)" for value, n in counts.items())
            lines.append(
                f"**Warning:** these runs were made by {len(counts)} {name}: {held}. Each "
                f"comparison whose runs mix them is marked `mixed` and is not a clean "
                "comparison; `--code-version VERSION` reports on one code version."
            )
    return lines


def table(runs: pd.DataFrame) -> pd.DataFrame:
    """What made the runs: each code version, commit, data fingerprint, CPU, host and the key
    package versions, with their run counts."""
    rows = []
    columns = [PROVENANCE + key for key in MADE_BY]
    columns += [PROVENANCE + f"packages.{name}" for name in PACKAGES_SHOWN]
    for column in columns:
        if column not in runs:
            continue
        values = runs[column].fillna("unknown").astype(str)
        if column == PROVENANCE + "commit" and PROVENANCE + "dirty" in runs:
            dirty = runs[PROVENANCE + "dirty"].eq(True)
            values = values.str.slice(0, 12) + dirty.map({True: " (dirty)", False: ""})
        for value, n in values.value_counts().items():
            rows.append({"what": column.removeprefix(PROVENANCE), "value": value, "runs": n})
    return pd.DataFrame(rows)


def timings_by_cpu(runs: pd.DataFrame) -> pd.DataFrame:
    """Training seconds and images per second, per CPU: never averaged across CPUs."""
    rows = []
    for cpu, group in runs.groupby(CPU):
        rows.append({
            "cpu": cpu, "runs": len(group),
            "train s (mean)": group["train_seconds"].mean() if "train_seconds" in group else None,
            "images/s (mean)": group["images_per_second"].mean()
            if "images_per_second" in group else None,
        })  # fmt: skip
    return pd.DataFrame(rows)


def several_cpus(runs: pd.DataFrame) -> bool:
    return CPU in runs and runs[CPU].astype(str).nunique() > 1


def mixed(runs: pd.DataFrame) -> str:
    """'' when the runs agree on code version and data, else what they mix."""
    return ", ".join(
        name for column, name in MUST_AGREE.items() if runs[column].astype(str).nunique() > 1
    )


def header() -> list[str]:
    """What made this report: the command, when, sweeplab's code version and commit, where."""
    git = git_state()
    commit = (git["commit"] or "no git")[:12] + (" (dirty)" if git["dirty"] else "")
    command = " ".join(["python", *[Path(sys.argv[0]).as_posix(), *sys.argv[1:]]])
    return [
        f"Made by `{command}` at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with sweeplab code "
        f"version {code_version()} (commit {commit}), on {cpu_model()}, host "
        f"{socket.gethostname()}."
    ]
