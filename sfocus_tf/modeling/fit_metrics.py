"""The metrics SFocusModel reports through fit and evaluate, and what each one means."""

from __future__ import annotations

import keras

from sfocus_tf.modeling import terms

# Batch means, reported where the step computed them: the objective, its terms
# (terms.TERMS), the regularisation losses (model.losses: weight decay) and the
# shares of last-layer maps that are zero everywhere.
REGULARIZATION = "l2"
EMPTY_SHARES = ("empty_target", "empty_confusing")
LOSS_METRICS = ("loss",) + terms.NAMES + (REGULARIZATION,) + EMPTY_SHARES

# One line per metric, shown beside its chart in TensorBoard.
DESCRIPTIONS = {
    "loss": "the objective minimised: ce + s(t) * (the weighted attention terms) + l2, "
            "s(t) being the attention warm-up (1 in validation, where every term has "
            "its full weight)",
    **{term.name: term.description for term in terms.TERMS},
    REGULARIZATION: "weight decay inside the loss: the sum of the model's L2 penalties "
                    "(model.losses); absent when there are none (AdamW decays the weights "
                    "itself)",
    "empty_target": "share of the batch's true-class last-layer maps that are zero "
                    "everywhere (a cheap way to meet separability)",
    "empty_confusing": "share of the batch's confusing-class last-layer maps that are zero "
                       "everywhere",
    "accuracy": "top-1 accuracy (multi-label data: binary accuracy of every label)",
    "top5_accuracy": "share of examples whose label is among the 5 highest logits",
}


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
