"""sweeplab: Hydra-configured training and sweeps of small image classifiers."""

__version__ = "0.1.0"
