"""sweeplab's launchers for Hydra (plugins must live in the hydra_plugins namespace); its
sweeper is a package of its own, plugins/sweeplab_optuna_sweeper."""
