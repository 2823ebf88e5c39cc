"""sweeplab's adaptive-seeds sweeper for Hydra: `hydra/sweeper=sweeplab_seeds` in any Hydra app
whose task returns a number. It runs every configuration of a grid on a few seeds, then adds
seeds, one at a time, only to the configurations a still-open comparison needs, with an error
rate that holds however many rounds it looks (`_impl.py`, `stats.py`).

Importing this package imports neither the statistics nor anything of the app.
"""

DECISIONS = "decisions.csv"  # in the sweep folder, rewritten after every round
RECORDS = ".seeds"  # in the sweep folder: one JSON file per finished job, and the lock

__all__ = ["DECISIONS", "RECORDS"]
