"""The command line before Hydra reads it: a mistyped key answered with the key it most
likely meant, and path values quoted for Hydra's override grammar (run.py calls both)."""

from __future__ import annotations

import difflib
from pathlib import Path

from sweeplab.config import STUDY_GROUPS, known_keys
from sweeplab.errors import SweeplabError, closest_key


def check_override_keys(arguments: list[str]) -> None:
    """Raise with a suggestion when a command-line `key=value` names a key no schema has
    (`regularization.weigth_decay`): Hydra's own answer would be to add it with `+`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    known, groups = known_keys(), {"model", "dataset", "optimizer", "scheduler",
                                   "regularization", "lenet_variant", *STUDY_GROUPS}  # fmt: skip
    nodes = {name.rsplit(".", i)[0] for name in known for i in range(1, name.count(".") + 1)}
    parser = OverridesParser.create()
    for text in arguments:
        if text.startswith(("-", "+", "~", "hydra.", "hydra/")) or "=" not in text:
            continue
        try:
            (override,) = parser.parse_overrides([text])
        except Exception:
            continue  # Hydra reports a malformed override itself
        key = override.get_key_element()
        if key in known or key in groups or key in nodes:
            continue
        meant = closest_key(key, known)
        if meant is not None:
            raise SweeplabError(f"unknown key {key!r}: did you mean {meant}?")


CONF = Path(__file__).resolve().parents[2] / "conf"  # the project's config tree


def group_options(group: str, conf: Path = CONF) -> list[str]:
    """The options of a config group as Hydra finds them: the YAML files of conf/<group>/ and
    the nodes stored under the group in Hydra's ConfigStore (sorted)."""
    from hydra.core.config_store import ConfigStore

    stored = ConfigStore.instance().repo.get(group)
    names = {name.removesuffix(".yaml") for name in stored} if isinstance(stored, dict) else set()
    return sorted(names | {path.stem for path in (conf / group).glob("*.yaml")})


def check_group_options(arguments: list[str], conf: Path = CONF) -> None:
    """Raise one line for `group=option` whose option the group does not have (`model=lenet6`),
    listing the options and the likeliest meant: Hydra's own answer is twenty lines."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for text in arguments:
        if text.startswith(("-", "~")) or "=" not in text:
            continue
        try:
            (override,) = parser.parse_overrides([text])
        except Exception:
            continue  # Hydra reports a malformed override itself
        group = override.key_or_group
        if "." in group or group.startswith("hydra"):  # a key; Hydra's groups have plugins too
            continue
        options = group_options(group, conf)
        if not options:
            continue
        values = list(override.sweep_string_iterator()) if override.is_sweep_override() else [
            override.value()
        ]  # fmt: skip
        for value in values:
            if isinstance(value, str) and value not in options:
                meant = difflib.get_close_matches(value, options, n=1, cutoff=0.6)
                hint = f"did you mean {meant[0]}? " if meant else ""
                raise SweeplabError(
                    f"{group}={value}: no such option: {hint}{group} is one of "
                    f"{', '.join(options)} (conf/{group}/)"
                )


PATH_KEYS = ("ckpt", "dataset.root")  # values that are paths, typed as the console printed them
GRAMMAR = set("=,[]{}()'\" ")  # characters Hydra's override grammar reads as syntax


def quote_paths(arguments: list[str]) -> list[str]:
    """The command line with each path value of PATH_KEYS quoted for Hydra's grammar: a
    sweep's job folders are named `key=value,key=value`, and `ckpt=<that>/checkpoints/best.pt`
    should work as it is pasted."""
    quoted = []
    for text in arguments:
        key, sep, value = text.partition("=")
        if sep and key in PATH_KEYS and value[:1] not in ("'", '"') and GRAMMAR & set(value):
            value = "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
            text = f"{key}={value}"
        quoted.append(text)
    return quoted
