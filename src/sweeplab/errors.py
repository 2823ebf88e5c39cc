"""User-facing errors: bad config values, missing data, unusable checkpoints.

`run.py` prints these as one line and exits; anything else is a bug and keeps its traceback.
"""

import difflib
from collections.abc import Iterable


class SweeplabError(Exception):
    """An error the user can fix; its message says what was wrong and how to fix it."""


def require(ok: bool, key: str, value: object, rule: str) -> None:
    """Raise `invalid config: key=value: rule` unless `ok`."""
    if not ok:
        raise SweeplabError(f"invalid config: {key}={value!r}: {rule}")


def closest_key(key: str, known: Iterable[str]) -> str | None:
    """The known dotted key a mistyped one most likely meant: the one known key that ends in
    it (`noise_std` -> `regularization.noise_std`), else the one it abbreviates (`wd` ->
    `regularization.weight_decay`, `bs` -> `batch_size`, `noise` -> `...noise_std`), else the
    closest spelling, else None."""
    known = list(known)
    tail = [name for name in known if name.endswith(f".{key}")]
    if len(tail) == 1:
        return tail[0]
    section, _, last = key.rpartition(".")
    near = [name for name in known if name.rpartition(".")[0] == section] if section else known
    short = [name for name in near if _abbreviates(last, name.rpartition(".")[2])]
    if len(short) == 1:
        return short[0]
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    return close[0] if close else None


def _abbreviates(short: str, name: str) -> bool:
    """Whether `short` is how users shorten `name`: its words' initials (`wd` for
    `weight_decay`), the start of its first word (`noise` for `noise_std`), or of the whole
    name (`val_acc` for `val_accuracy`)."""
    words = [word for word in name.split("_") if word]
    if len(short) < 2 or short == name or not words:
        return False
    initials = short == "".join(word[0] for word in words)
    first_word = len(words) > 1 and words[0].startswith(short)
    return initials or first_word or (len(short) >= 5 and name.startswith(short))  # val_acc
