"""sweeplab's analysis: run folders -> tidy frames, comparisons, reports. Reads files only.

from analysis import load_sweeps   # the runs and comparisons a report is made from
"""

from typing import Any

__all__ = ["Sweeps", "load_sweeps"]


def __getattr__(name: str) -> Any:
    # Loaded on first use, so that `import analysis.page` stays light.
    if name in __all__:
        from analysis import sweeps

        return getattr(sweeps, name)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
