"""Every number knows where it came from: each run records its code, data and machine; a rerun
never passes off another code version's runs as this one's; a report never pools them silently.
Real processes on copies of the project (so that a test can change its source), small subsets."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy
import pandas as pd
import pytest
import torch

from analysis.report import main as report
from sweeplab import provenance
from sweeplab.errors import SweeplabError
from sweeplab.run_folder import Checkpoint, decide_start
from sweeplab.run_format import Summary
from tests.conftest import QUICK_SWEEP, ROOT


def lscpu_model() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    return re.search(r"^Model name:\s*(.+)$", out, flags=re.M).group(1).strip()  # type: ignore[union-attr]


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True).stdout.strip()


def test_a_run_records_its_commit_code_version_packages_cpu_and_host(quick_run: Path) -> None:
    made = json.loads((quick_run / "summary.json").read_text())["provenance"]
    if (ROOT / ".git").exists():
        assert made["commit"] == git("rev-parse", "HEAD")
        assert made["dirty"] == bool(git("status", "--porcelain", "--untracked-files=no"))
    assert made["code_version"] == provenance.code_version()
    assert made["packages"]["torch"] == torch.__version__
    assert made["packages"]["numpy"] == numpy.__version__
    assert made["cpu"] == lscpu_model() and made["host"] == socket.gethostname()
    assert made["threads"] >= 1 and len(made["data_fingerprint"]) == 16


# --- a copy of the project, whose source a test may change ------------------------------------


def project_copy(folder: Path) -> Path:
    """What runs a sweep (the library, run.py, conf/, analysis/) in a folder of its own."""
    for name in ("src", "conf", "analysis"):
        shutil.copytree(ROOT / name, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "run.py", folder / "run.py")
    return folder


def run_in(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python run.py ARGS` with the copy's own library first on the path."""
    env = {"PYTHONPATH": f"{project / 'src'}:{project}", "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, str(project / "run.py"), *args], cwd=project, capture_output=True,
        text=True, env=env, timeout=600,
    )  # fmt: skip


@pytest.mark.slow
def test_outside_git_the_code_version_is_the_same_and_a_dirty_tree_saves_its_diff(
    tmp_path: Path,
) -> None:
    project = project_copy(tmp_path / "project")
    plain = run_in(project, *QUICK_SWEEP, "epochs=1", f"hydra.run.dir={tmp_path / 'plain'}")
    assert plain.returncode == 0, plain.stderr[-2000:]
    made = json.loads((tmp_path / "plain" / "summary.json").read_text())["provenance"]
    assert made["git"] == "no git" and made["commit"] is None and made["dirty"] is None
    assert made["code_version"] == provenance.code_version()  # the same files, no git

    for step in (["init", "-q"], ["add", "."], ["-c", "user.name=t", "-c", "user.email=t@t",
                                                 "commit", "-qm", "copy"]):  # fmt: skip
        git(*step, cwd=project)
    with (project / "conf" / "config.yaml").open("a") as config:
        config.write("# an uncommitted change\n")
    dirty = run_in(project, *QUICK_SWEEP, "epochs=1", f"hydra.run.dir={tmp_path / 'dirty'}")
    assert dirty.returncode == 0, dirty.stderr[-2000:]
    made = json.loads((tmp_path / "dirty" / "summary.json").read_text())["provenance"]
    assert made["commit"] == git("rev-parse", "HEAD", cwd=project) and made["dirty"] is True
    assert made["code_version"] != provenance.code_version()  # conf/ decides results
    diff = (tmp_path / "dirty" / provenance.DIFF).read_text()
    assert "+# an uncommitted change" in diff


@pytest.mark.slow
def test_a_sweep_rerun_after_a_code_change_stops_then_reruns_or_keeps_as_asked(
    tmp_path: Path,
) -> None:
    project = project_copy(tmp_path / "project")
    sweep = tmp_path / "sweep"
    args = [*QUICK_SWEEP, "epochs=1", "seed=0,1", f"hydra.sweep.dir={sweep}"]
    first = run_in(project, "-m", *args)
    assert first.returncode == 0, first.stderr[-2000:]
    before = {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/summary.json")}
    old = {s["provenance"]["code_version"] for s in before.values()}
    with (project / "src" / "sweeplab" / "train.py").open("a") as source:
        source.write("# a fix\n")  # what a user's edit or git pull does

    stopped = run_in(project, "-m", *args)
    assert stopped.returncode == 2 and stopped.stderr.strip().count("\n") == 0, stopped.stderr
    line = rf"2 run\(s\) in {sweep} were made by another code version \(2 by {old.pop()}; "
    assert re.search(line + r"this code is \w+\): pass stale=rerun", stopped.stderr)

    kept = run_in(project, "-m", *args, "stale=keep")
    assert kept.returncode == 0, kept.stderr[-2000:]
    after_keep = {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/summary.json")}
    assert after_keep == before  # skipped, knowingly

    rerun = run_in(project, "-m", *args, "stale=rerun")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    for name, summary in before.items():
        new = json.loads((sweep / name / "summary.json").read_text())
        assert new["provenance"]["code_version"] != summary["provenance"]["code_version"]
        (aside,) = (sweep / name / "stale").glob("*/summary.json")  # kept, not deleted
        assert json.loads(aside.read_text()) == summary
    report_text = (sweep / "report" / "report.md").read_text()
    assert "runs: 2 (2 completed)" in report_text  # the kept-aside runs are not runs of it


def test_an_interrupted_run_of_other_code_or_data_is_resumed_only_when_asked(
    tmp_path: Path,
) -> None:
    Summary(status="interrupted", config_hash="h").write(tmp_path)
    Checkpoint(config={}, model={}, config_hash="h", epoch=1, made_by=["old", "data"]).save(
        tmp_path / "checkpoints" / "last.pt"
    )
    with pytest.raises(SweeplabError, match="made by code version old, not this command's new"):
        decide_start(tmp_path, "h", ["new", "data"], "stop")
    with pytest.raises(SweeplabError, match="made by data fingerprint data, not this command's"):
        decide_start(tmp_path, "h", ["old", "other"], "stop")
    assert decide_start(tmp_path, "h", ["new", "data"], "keep").action == "resume"
    assert decide_start(tmp_path, "h", ["new", "data"], "rerun").action == "fresh"
    assert list(tmp_path.glob("stale/old-*/checkpoints/last.pt"))
    assert not (tmp_path / "checkpoints").exists()


def test_an_unknown_stale_value_is_one_line(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    result = run_cli("stale=maybe", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0, result.stderr
    assert "stale" in result.stderr and "rerun" in result.stderr
    # a sweep: the same line once, before any job (the sweep's stale check)
    sweep = run_cli("-m", "stale=maybe", "seed=0,1", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert sweep.returncode == 2 and sweep.stderr.strip().count("\n") == 0, sweep.stderr
    assert "invalid config: stale='maybe'" in sweep.stderr
    assert not list((tmp_path / "sweep").glob("*/summary.json"))


# --- reports over runs that different code, data or machines made ----------------------------


def _edit_provenance(sweep: Path, runs: list[Path], **fields: str) -> None:
    for folder in runs:
        summary = json.loads((folder / "summary.json").read_text())
        summary["provenance"].update(fields)
        (folder / "summary.json").write_text(json.dumps(summary))


def test_a_report_over_two_code_versions_and_two_cpus_warns_marks_and_splits_timings(
    joblib_sweep: Path, tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep"
    shutil.copytree(joblib_sweep, sweep, ignore=shutil.ignore_patterns("report"))
    seed_1 = sorted(p.parent for p in sweep.glob("*seed=1/summary.json"))
    _edit_provenance(sweep, seed_1, code_version="0ther0ther00", cpu="Another CPU")
    assert report([str(sweep), "--out", str(tmp_path / "r")]) == 0
    text = (tmp_path / "r" / "report.md").read_text()
    top = text.split("\n- runs:")[0]
    assert "**Warning:** these runs were made by 2 code versions" in top
    assert "0ther0ther00 (4 runs)" in top
    compared = pd.read_csv(tmp_path / "r" / "comparisons.csv")
    assert (compared["mixed"] == "code versions").all()  # each pools seed 0's and seed 1's
    assert compared["verdict"].str.endswith("(not clean: mixed code versions)").all()
    assert "training seconds are not averaged across CPUs" in text
    assert "| Another CPU " in text and f"| {lscpu_model()} " in text  # per CPU

    assert report([str(sweep), "--code-version", "0ther", "--out", str(tmp_path / "one")]) == 0
    one = (tmp_path / "one" / "report.md").read_text()
    assert "- runs: 4 (4 completed)" in one and "Warning" not in one.split("\n- runs:")[0]
    assert report([str(sweep), "--code-version", "zzz", "--out", str(tmp_path / "no")]) == 2


def test_run_folders_without_provenance_load_as_unknown(joblib_sweep: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "old"
    shutil.copytree(joblib_sweep, sweep, ignore=shutil.ignore_patterns("report"))
    for path in sweep.glob("*/summary.json"):
        summary = json.loads(path.read_text())
        del summary["provenance"]
        path.write_text(json.dumps(summary))
    assert report([str(sweep), "--out", str(tmp_path / "r")]) == 0
    text = (tmp_path / "r" / "report.md").read_text()
    assert re.search(r"\| code_version +\| unknown +\| +8 \|", text)
    assert "Made by `python" in text.splitlines()[2]  # the report says what made it
