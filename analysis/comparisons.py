"""The comparisons of a report, with the seed as the unit of replication. The statistics live
in one place, without torch, that the reports and sweeplab's adaptive-seeds sweeper both use:
`hydra_plugins.sweeplab_seeds_sweeper._stats` (plugins/sweeplab_seeds_sweeper/)."""

from hydra_plugins.sweeplab_seeds_sweeper._stats import (
    ALPHA,
    CERTAIN,
    CERTAIN_TESTS,
    COMPARISON_COLUMNS,
    PAIRED,
    POWER,
    RAW_COLUMNS,
    REPLICATE,
    SAME,
    WELCH,
    compare_factors,
    compare_levels,
    decided,
    detectable_difference,
    finish,
    holm,
    levels,
    natural_order,
    paired_power,
    paired_test,
    paired_tests,
    pairs_needed,
    power_table,
    seed_differences,
    seeds_to_decide,
    unpaired_allowed,
    verdict,
    welch_test,
)

__all__ = [
    "ALPHA", "CERTAIN", "CERTAIN_TESTS", "COMPARISON_COLUMNS", "PAIRED", "POWER", "RAW_COLUMNS",
    "REPLICATE", "SAME", "WELCH", "compare_factors", "compare_levels", "decided",
    "detectable_difference", "finish", "holm", "levels", "natural_order", "paired_power",
    "paired_test", "paired_tests", "pairs_needed", "power_table", "seed_differences",
    "seeds_to_decide", "unpaired_allowed", "verdict", "welch_test",
]  # fmt: skip
