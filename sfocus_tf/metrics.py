"""The metrics SFocusModel reports through fit and evaluate."""

from __future__ import annotations

import keras

from sfocus_tf import terms

# Batch means, reported where the step computed them: the objective, its terms
# (terms.TERMS) and the shares of last-layer maps that are zero everywhere.
EMPTY_SHARES = ("empty_target", "empty_confusing")
LOSS_METRICS = ("loss",) + terms.NAMES + EMPTY_SHARES


def make_metrics(num_classes: int, multi_label: bool) -> dict:
    """Name -> tracker, in the order the progress bar shows them."""
    trackers = {name: keras.metrics.Mean(name=name) for name in LOSS_METRICS}
    if multi_label:
        trackers["accuracy"] = keras.metrics.BinaryAccuracy(name="accuracy")
    else:
        trackers["accuracy"] = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        if num_classes >= 5:
            trackers["top5_accuracy"] = keras.metrics.SparseTopKCategoricalAccuracy(
                k=5, name="top5_accuracy")
    return trackers
