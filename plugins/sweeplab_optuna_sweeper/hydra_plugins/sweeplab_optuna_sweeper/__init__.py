"""sweeplab's Optuna sweeper for Hydra: `hydra/sweeper=sweeplab_optuna` in any Hydra app.

The task's side is `current_trial()` (report intermediate values, be pruned) and
`trial_info()`; see `trial.py`. Importing this package imports neither Optuna nor anything
of the app.
"""

from hydra_plugins.sweeplab_optuna_sweeper.trial import TrialInfo, current_trial, trial_info

__all__ = ["TrialInfo", "current_trial", "trial_info"]
