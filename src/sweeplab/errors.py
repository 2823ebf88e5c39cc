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
    it (`noise_std` -> `regularization.noise_std`), else the closest spelling, else None."""
    known = list(known)
    tail = [name for name in known if name.endswith(f".{key}")]
    if len(tail) == 1:
        return tail[0]
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    return close[0] if close else None
