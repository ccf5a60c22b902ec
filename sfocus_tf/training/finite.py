"""Non-finite numbers: stop training at the step a loss term goes NaN or Inf, and
never save non-finite weights (``files.json_safe`` keeps bare ``NaN`` out of JSON)."""

from __future__ import annotations

import math

import keras
import numpy as np

from sfocus_tf.modeling import terms
from sfocus_tf.modeling.fit_metrics import REGULARIZATION

# The loss terms SFocusModel logs, in the order an error names them; "loss" is their
# weighted sum plus the weight decay ("l2").
TERMS = terms.NAMES + (REGULARIZATION, "loss")


class NonFiniteError(ValueError):
    """Training produced a NaN or Inf (a ValueError: the commands print one line)."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raises ``NonFiniteError`` after the first step whose loss or a loss term is
    not finite, naming the step and the terms. Put it first in the callback list,
    so no later callback (a backup, a checkpoint) sees that step.

    The logs are the epoch's running means, so a mean turns non-finite exactly at
    the step whose own value did. Reading them each step waits for the step to
    finish (Keras' progress bar does the same with ``verbose=1``).
    """

    def on_train_batch_end(self, batch, logs=None):
        bad = {name: value for name, value in _scalars(logs, TERMS).items()
               if not math.isfinite(value)}
        if not bad:
            return
        step = int(self.model.optimizer.iterations.numpy())
        terms = ", ".join(f"{name}={value}" for name, value in bad.items())
        if set(bad) == {"loss"}:
            terms += " (its terms are finite: their sum is not)"
        raise NonFiniteError(
            f"loss went non-finite at step {step} (batch {batch + 1} of the epoch): "
            f"{terms}; training stopped, the backups hold the last finite weights")


def non_finite_variables(variables) -> list[str]:
    """The paths of the floating-point variables holding a NaN or Inf."""
    bad = []
    for variable in variables:
        value = keras.ops.convert_to_numpy(variable)
        if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
            bad.append(variable.path)
    return bad


def check_finite_weights(model: keras.Model, what: str) -> None:
    """Raises ``NonFiniteError`` before ``what`` would be written from non-finite
    weights or optimizer state."""
    variables = list(model.weights)
    if model.optimizer is not None:
        variables += list(model.optimizer.variables)
    bad = non_finite_variables(variables)
    if bad:
        step = int(model.optimizer.iterations.numpy()) if model.optimizer else "?"
        raise NonFiniteError(
            f"{len(bad)} variable(s) are not finite at step {step} (e.g. {bad[0]}); "
            f"{what} not written, the last finite one is kept")


def _scalars(logs, names) -> dict:
    return {name: float(np.asarray(logs[name])) for name in names
            if logs and name in logs}

