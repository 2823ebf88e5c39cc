"""The README and the manual cannot rot: every command they show composes or parses.

Commands are collected from README.md, docs/*.md and benchmarks/README.md, in code blocks and
in inline code.
`python run.py ...` composes with Hydra and passes sweeplab's config check, and its model is
built (each job of a sweep; a search's spaces parse as the sweeper parses them);
`mode=eval` / `mode=predict` commands check a real checkpoint against the config, as those
modes do. `python analysis/...`, `python benchmarks/...` and `python docs/...` commands parse
their options with the script's own parser. A command that cannot be checked ends in
`# not checked: <why>` on the page itself. A `$ python run.py ...` line followed by a
`sweeplab: error: ...` line must fail with exactly that line.
"""

from __future__ import annotations

import argparse
import re
import runpy
import shlex
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import product
from pathlib import Path

import pytest
import yaml
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException
from hydra_plugins.sweeplab_optuna_sweeper._space import SearchError, distribution
from omegaconf import DictConfig, open_dict
from optuna.distributions import CategoricalDistribution

from sweeplab.command_line import check_group_options, check_override_keys
from sweeplab.config import Mode, check_config, register_configs
from sweeplab.datasets import dataset_spec
from sweeplab.errors import SweeplabError
from sweeplab.inference import check_fits
from sweeplab.models import MODELS, build_model
from sweeplab.run_folder import Checkpoint
from tests.conftest import ROOT, compose_config

PAGES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "benchmarks" / "README.md",
]
COMMAND = re.compile(r"^(?:\$ )?python (?:run\.py|(?:analysis|benchmarks|docs)/\S+\.py)\b")
UNCHECKED = "# not checked:"
SEARCH = ("hparams_search=", "hydra/sweeper=sweeplab_optuna")


@dataclass(frozen=True)
class Shown:
    """A command as a page shows it, and the error line shown under it, if any."""

    where: str
    command: str
    error: str | None = None


def _inline_commands(text: str) -> list[str]:
    """`python ...` in inline code outside code blocks; a line break inside counts as a space."""
    prose = re.sub(r"^ *```.*?^ *```", "", text, flags=re.S | re.M)
    spans = re.findall(r"`([^`]+)`", prose.replace("\n", " "))
    return [re.sub(r"\s+", " ", span).strip() for span in spans if COMMAND.match(span.strip())]


def shown_commands() -> list[Shown]:
    """Every command the README and docs/ show, with the page and line it is on."""
    shown = []
    for page in PAGES:
        text, name = page.read_text(), page.relative_to(ROOT)
        lines = text.splitlines()
        in_block = False
        for number, line in enumerate(lines, 1):
            if line.lstrip().startswith("```"):
                in_block = not in_block
            elif in_block and COMMAND.match(line := line.strip()):
                after = lines[number].strip() if number < len(lines) else ""
                error = after if line.startswith("$ ") and after.startswith("sweeplab:") else None
                shown.append(Shown(f"{name}:{number}", line, error))
        shown += [Shown(f"{name} (inline)", span) for span in _inline_commands(text)]
    return shown


SHOWN = shown_commands()
CHECKED = [s for s in SHOWN if UNCHECKED not in s.command]


def _words(command: str) -> list[str]:
    """The command's arguments after `python <script>`, without its trailing comment."""
    return shlex.split(command.removeprefix("$ "), comments=True)[2:]


def test_the_pages_show_commands_and_mark_the_ones_not_checked() -> None:
    scripts = {_script(s.command) for s in SHOWN}
    assert len(SHOWN) >= 100, "fewer commands than the pages show: the collector broke"
    assert {"run.py", "analysis/report.py", "benchmarks/search.py"} <= scripts
    for marked in (s for s in SHOWN if UNCHECKED in s.command):
        reason = marked.command.split(UNCHECKED, 1)[1].strip()
        assert reason, f"{marked.where}: '{UNCHECKED}' needs a reason"


def _script(command: str) -> str:
    return command.removeprefix("$ ").split()[1]


@pytest.fixture
def checkpoint(quick_run: Path) -> Path:
    """A real checkpoint of the default config, for the eval and predict commands."""
    return quick_run / "checkpoints" / "best.pt"


@pytest.fixture(scope="module")
def example_model() -> Iterator[str]:
    """docs/extending.md's example model, registered from the page's own code and YAML."""
    page = (ROOT / "docs" / "extending.md").read_text()
    code = re.search(r"```python\n(.*?)```", page, flags=re.S)
    node = re.search(r"`conf/model/(\w+)\.yaml`.*?```yaml\n(.*?)```", page, flags=re.S)
    assert code and node, "extending.md lost its example model or its YAML"
    name = node.group(1)
    module = sys.modules["docs_extending_example"] = types.ModuleType("docs_extending_example")
    exec(compile(code.group(1), "docs/extending.md", "exec"), module.__dict__)
    register_configs()  # stores the new model's schema, as run.py does at start
    ConfigStore.instance().store(group="model", name=name, node=yaml.safe_load(node.group(2)))
    yield name
    # The other tests see the bundled models only.
    del MODELS[name], sys.modules[module.__name__]
    repo = ConfigStore.instance().repo
    del repo["model"][f"{name}.yaml"], repo["schema"]["model"][f"{name}.yaml"]


def _jobs(overrides: list[str], search: bool) -> list[list[str]]:
    """The jobs a command line makes: a grid's every combination, a search's first trial."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    axes = []
    for override in parsed:
        line, key = override.input_line, override.get_key_element()
        if not override.is_sweep_override():
            axes.append([line])
        elif search:  # parsed and checked as the sweeper does; its first value composed
            space = distribution(override)
            first = space.choices[0] if isinstance(space, CategoricalDistribution) else space.low
            axes.append([f"{key}={first}"])
        else:
            axes.append([f"{key}={value}" for value in override.sweep_string_iterator()])
    return [list(job) for job in product(*axes)]


def _compose(job: list[str]) -> DictConfig:
    cfg = compose_config(*job, with_hydra=True)
    with open_dict(cfg):  # composed and checked against the plugins' schemas; the job is the rest
        del cfg["hydra"]
    return cfg


def _check_run_command(words: list[str], checkpoint: Path) -> None:
    """Compose each job as run.py would, check it, build its model, and fit its checkpoint."""
    flags = {"-m", "--multirun", "--help", "-h", "--hydra-help", "..."}  # ...: "your overrides"
    overrides, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif word in ("--cfg", "-c", "--package", "-p"):
            skip = True  # the flag's value (job, hydra, all; a package)
        elif word.startswith("ckpt="):  # a placeholder path: the test's own checkpoint
            overrides.append(f"ckpt={checkpoint}")
        elif word not in flags:
            overrides.append(word)
    check_override_keys(overrides)  # what run.py checks before Hydra reads the command line
    check_group_options(overrides)
    search = any(word.startswith(SEARCH) for word in overrides)
    for job in _jobs(overrides, search):
        run = check_config(_compose(job))
        if run.mode in (Mode.eval, Mode.predict):
            check_fits(Checkpoint.load(str(checkpoint)), run, str(checkpoint))
        else:
            data = dataset_spec(run.dataset.name)
            build_model(run.model, data.channels, run.input_size, data.num_classes)


class _Parsed(Exception):
    """Raised in place of the script's work once its parser has taken the options."""


def _dry_parse(script: Path, words: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Run `script` as __main__ with `words` until its ArgumentParser has parsed them."""
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise _Parsed(original(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    monkeypatch.setattr(sys, "argv", [str(script), *words])
    monkeypatch.syspath_prepend(str(script.parent))
    with pytest.raises((_Parsed, SystemExit)) as stopped:
        runpy.run_path(str(script), run_name="__main__")
    if stopped.type is SystemExit:  # --help exits 0; a bad option exits 2
        assert stopped.value.code == 0, f"options do not parse: {words}"


@pytest.mark.parametrize("shown", CHECKED, ids=[f"{s.where} {s.command[:70]}" for s in CHECKED])
def test_a_command_shown_in_the_docs_composes_or_parses(
    shown: Shown, checkpoint: Path, example_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    words, script = _words(shown.command), _script(shown.command)
    if script != "run.py":
        _dry_parse(ROOT / script, words, monkeypatch)
    elif shown.error is None:
        _check_run_command(words, checkpoint)
    else:
        with pytest.raises(SweeplabError) as failed:
            _check_run_command(words, checkpoint)
        # the page's line lists the bundled models; this test registers the example one too
        message = str(failed.value).replace(f", {example_model} (conf/", " (conf/")
        assert f"sweeplab: error: {message}" == shown.error


def _anchors(page: Path) -> set[str]:
    """The anchors MkDocs gives the page's headings (outside code blocks)."""
    toc = pytest.importorskip("markdown.extensions.toc", reason="make test installs the docs extra")
    text = re.sub(r"^ *```.*?^ *```", "", page.read_text(), flags=re.S | re.M)
    headings = re.findall(r"^#{1,6} (.+)$", text, flags=re.M)
    return {toc.slugify(re.sub(r"[`*]", "", heading), "-") for heading in headings}


def test_the_readme_links_only_to_pages_images_and_headings_that_exist() -> None:
    links = re.findall(r"\]\((docs/[^)#\s]+)(?:#([^)\s]+))?\)", (ROOT / "README.md").read_text())
    assert len(links) >= 20, "the README should lead into the manual"
    for target, anchor in links:
        assert (ROOT / target).is_file(), f"README links to {target}, which does not exist"
        if anchor:
            assert anchor in _anchors(ROOT / target), f"{target} has no heading #{anchor}"


@pytest.mark.parametrize(
    ("command", "failure"),
    [
        ("python run.py optimizer.lr=0", SweeplabError),  # the config check
        ("python run.py model.widht=3", SweeplabError),  # run.py: did you mean model.width?
        ("python run.py model.qqq=3", ConfigCompositionException),  # Hydra: no such key
        ("python run.py -m model=lenet5_classic,mlp input_size=28", SweeplabError),  # a job's model
        ("python run.py mode=eval ckpt=best.pt model=mlp", SweeplabError),  # the checkpoint's fit
        ("python run.py -m hparams_search=fashion_optuna 'optimizer.lr=interval(0.1,0.01)'",
         SearchError),  # the sweeper's own parse: an inverted interval
        ("python analysis/report.py multirun/x --no-such-option", AssertionError),
    ],
)  # fmt: skip
def test_the_check_fails_on_a_command_that_would_fail(
    command: str, failure: type[Exception], checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(failure):
        test_a_command_shown_in_the_docs_composes_or_parses(
            Shown("here", command), checkpoint, "tiny_cnn", monkeypatch
        )
