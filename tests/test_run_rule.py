"""The one rule for an existing run folder (sweeplab/run_rule.py): every status x last
checkpoint x what made it x stale setting, read without torch; and the changed-data rerun that
the sweep's plan used to miss, as a real process."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from itertools import product
from pathlib import Path

import pytest

from sweeplab.run_format import LastCheckpoint, MadeBy, Summary
from sweeplab.run_rule import Action, Command, FolderState, decide
from tests.conftest import QUICK_SWEEP, ROOT, run_sweep

NOW = MadeBy("code-1", "data-1")
MADE = {
    "same": NOW,
    "other code": MadeBy("code-0", "data-1"),
    "other data": MadeBy("code-1", "data-0"),
}
STATUSES = [None, "completed", "pruned", "failed", "diverged", "interrupted"]

# (what the folder holds, what made it differs?, stale) -> the action; "other" is either kind
EXPECTED = {
    ("finished", "same", "stop"): Action.SKIP,
    ("finished", "same", "rerun"): Action.SKIP,
    ("finished", "same", "keep"): Action.SKIP,
    ("finished", "other", "stop"): Action.STOP,
    ("finished", "other", "rerun"): Action.RERUN,
    ("finished", "other", "keep"): Action.SKIP,
    ("resumable", "same", "stop"): Action.RESUME,
    ("resumable", "same", "rerun"): Action.RESUME,
    ("resumable", "same", "keep"): Action.RESUME,
    ("resumable", "other", "stop"): Action.STOP,
    ("resumable", "other", "rerun"): Action.RERUN,
    ("resumable", "other", "keep"): Action.RESUME,
}


def kind(status: str | None, last: bool) -> str:
    if status in ("completed", "pruned"):
        return "finished"
    if status in ("failed", "diverged") or not last:
        return "afresh"  # nothing to resume from: start again, whatever made it
    return "resumable"


@pytest.mark.parametrize(
    ("status", "last", "made", "stale"),
    list(product(STATUSES, [False, True], list(MADE), ["stop", "rerun", "keep"])),
)
def test_the_rule_gives_one_action_for_every_folder_state(
    status: str | None, last: bool, made: str, stale: str
) -> None:
    found = MADE[made]
    summary = (
        Summary(status=status, config_hash="h", provenance=found._asdict()) if status else None
    )
    checkpoint = LastCheckpoint("h", 2, found) if last else None
    decision = decide(FolderState(summary, checkpoint), Command("h", NOW, stale), "run")
    what = kind(status, last)
    expected = (
        Action.RUN
        if what == "afresh"
        else EXPECTED[what, "same" if made == "same" else "other", stale]
    )
    assert decision.action == expected, decision
    if decision.action == Action.STOP:  # one line that names what differs and how to go on
        differs = "code version code-0" if made == "other code" else "data fingerprint data-0"
        assert f"run was made by {differs}, not this command's" in decision.message
        assert "stale=rerun" in decision.message and "\n" not in decision.message
    if decision.action == Action.RERUN:
        assert decision.found == found


def test_a_run_of_another_config_stops_whatever_else_holds() -> None:
    for summary, last in [(Summary(status="completed", config_hash="x"), None),
                          (None, LastCheckpoint("x", 1, NOW))]:  # fmt: skip
        decision = decide(FolderState(summary, last), Command("h", NOW, "keep"), "run")
        assert decision.action == Action.STOP and "holds a run of another config" in (
            decision.message
        )


def test_a_checkpoint_that_does_not_say_what_made_it_is_resumed_as_before() -> None:
    """A last.pt from before checkpoints/last.json: the plan cannot tell, the run checks it."""
    decision = decide(FolderState(None, LastCheckpoint()), Command("h", NOW, "stop"), "run")
    assert (decision.action, decision.why) == (Action.RESUME, "from last.pt")


def test_reading_and_deciding_on_a_folder_imports_no_torch(tmp_path: Path) -> None:
    Summary(status="completed", config_hash="h", provenance=NOW._asdict()).write(tmp_path)
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from sweeplab.run_format import MadeBy, read_overrides\n"
        "from sweeplab.run_rule import Command, FolderState, decide\n"
        "from analysis.collect import load_runs\n"
        "folder = Path(sys.argv[1])\n"
        "decision = decide(FolderState.read(folder), Command('h', MadeBy('code-1', 'data-1')))\n"
        "runs = load_runs([folder])\n"
        "print(decision.action, len(runs), 'torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["skip", "1", "False"]


def fashion_copy(root: Path) -> Path:
    """The real FashionMNIST files in dataset.root's layout, ours to change."""
    source = Path("/usr/share/datasets/fashion-mnist")
    if not source.is_dir():
        pytest.skip("FashionMNIST is not installed: apt-get install dataset-fashion-mnist")
    folder = root / "FashionMNIST" / "raw"
    folder.mkdir(parents=True)
    for path in source.glob("*.gz"):
        shutil.copy(path, folder / path.name)
    return root


@pytest.mark.slow
def test_a_sweep_rerun_on_changed_data_stops_before_any_job_then_reruns_as_asked(
    tmp_path: Path,
) -> None:
    data, sweep = fashion_copy(tmp_path / "data"), tmp_path / "sweep"
    args = ["epochs=1", "seed=0", f"dataset.root={data}", *QUICK_SWEEP[:1]]
    first = run_sweep(sweep, *args)
    assert first.returncode == 0, first.stderr[-2000:]
    (summary_path,) = sweep.glob("*/summary.json")
    before = summary_path.read_text()
    # a corrected label: one byte of the test labels' content, the file still valid gzip
    labels = data / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    content = bytearray(gzip.decompress(labels.read_bytes()))
    content[8] = (content[8] + 1) % 10  # the first test image's label
    labels.write_bytes(gzip.compress(bytes(content)))

    again = run_sweep(sweep, *args)
    assert again.returncode == 2 and again.stderr.strip().count("\n") == 0, again.stderr
    assert "1 run(s) in" in again.stderr and "were made from other data" in again.stderr
    assert "pass stale=rerun" in again.stderr
    assert summary_path.read_text() == before  # no job started: nothing touched

    rerun = run_sweep(sweep, *args, "stale=rerun")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    new, old = json.loads(summary_path.read_text()), json.loads(before)
    made = [s["provenance"]["data_fingerprint"] for s in (new, old)]
    assert made[0] != made[1]  # trained again on the changed data
    (aside,) = summary_path.parent.glob("stale/*/summary.json")  # the old result kept aside
    assert aside.read_text() == before
