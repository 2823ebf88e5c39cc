"""User-facing errors: bad config values, missing data, unusable checkpoints.

`run.py` prints these as one line and exits; anything else is a bug and keeps its traceback.
"""


class SweeplabError(Exception):
    """An error the user can fix; its message says what was wrong and how to fix it."""


def require(ok: bool, key: str, value: object, rule: str) -> None:
    """Raise `invalid config: key=value: rule` unless `ok`."""
    if not ok:
        raise SweeplabError(f"invalid config: {key}={value!r}: {rule}")
