"""BatchNormalization whose batch statistics are twice differentiable."""

from __future__ import annotations

import contextlib
import threading

import keras
import tensorflow as tf
from keras import ops

from keras_models import keras_compat

_HIDDEN_FROM = threading.local()


@contextlib.contextmanager
def statistics_hidden_from(tape):
    """Inside this block :class:`BatchNorm` computes its batch statistics without
    ``tape`` recording them: to ``tape`` they are constants, so its gradients do
    not couple the examples of a batch, while every other tape (the training
    gradient) still sees the full computation. Costs nothing."""
    previous = getattr(_HIDDEN_FROM, "tape", None)
    _HIDDEN_FROM.tape = tape
    try:
        yield
    finally:
        _HIDDEN_FROM.tape = previous


@keras.saving.register_keras_serializable(package="keras_models")
class BatchNorm(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` with exact second derivatives in training.

    On TensorFlow, Keras takes batch statistics from ``tf.nn.moments``, which
    computes the variance around ``stop_gradient(mean)``. First derivatives are
    still exact (the variance is stationary in the mean), but derivatives of
    derivatives miss a term. SFOCUS with ``second_order=True`` differentiates the
    Grad-CAM gradient itself, which runs back through every BatchNorm between
    the inner and the last layer, so it needs the exact version. Same
    variables, same forward values, same cost.
    """

    def add_weight(self, *args, name=None, **kwargs):
        if name not in ("moving_mean", "moving_variance"):
            return super().add_weight(*args, name=name, **kwargs)
        # Under tf.distribute each replica updates its own copy of the moving
        # statistics (no communication inside the step, so the update may sit in
        # an XLA-compiled step); synchronize_moving_statistics then makes the
        # copies equal after the step, and a read outside a replica (saving,
        # get_weights) averages them. Keras' default (ON_WRITE, no aggregation)
        # also diverges, and a read outside a replica returns replica 0's copy.
        with keras.name_scope(self.name, caller=self):
            variable = keras.Variable(
                initializer=keras.initializers.get(kwargs["initializer"]),
                shape=kwargs["shape"], dtype=self.variable_dtype, trainable=False,
                autocast=False, aggregation="mean", synchronization="on_read", name=name)
        keras_compat.track_variable(self, variable)
        return variable

    def _moments(self, inputs, mask):  # private: keras_compat.OVERRIDDEN
        if mask is not None or self.synchronized:
            return super()._moments(inputs, mask)
        tape = getattr(_HIDDEN_FROM, "tape", None)
        if tape is None:
            return self._batch_moments(inputs)
        with tape.stop_recording():
            return self._batch_moments(inputs)

    def _batch_moments(self, inputs):
        axes = keras_compat.reduction_axes(self)
        mean = ops.mean(inputs, axis=axes, keepdims=True)
        variance = ops.mean(ops.square(inputs - mean), axis=axes, keepdims=True)
        return ops.squeeze(mean, axis=axes), ops.squeeze(variance, axis=axes)


def synchronize_moving_statistics(model: keras.Model) -> None:
    """Sets every replica's copy of the BatchNorm moving statistics of ``model`` to
    their mean over all replicas (all workers included). Call it in replica context
    (inside ``strategy.run``, e.g. ``train_step``) after each training step;
    ``SFocusModel.train_step`` does.

    Each replica updates its copy from its own slice of the batch, so without this
    the copies drift apart: validation, ``evaluate`` and ``predict`` under the
    strategy run each slice with its own replica's statistics, while the saved model
    holds their mean. With it, the moving statistics follow
    ``m * moving + (1 - m) * mean_over_replicas(slice statistics)`` (the mean of the
    slice means is the global batch mean; the mean of the slice variances leaves out
    the spread between slice means). One batched all-reduce per step, outside any
    XLA-compiled part. A no-op without a strategy or with a single replica. Covers
    stock ``keras.layers.BatchNormalization`` too.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return
    variables = [variable for layer in model._flatten_layers(include_self=False)
                 if isinstance(layer, keras.layers.BatchNormalization)
                 for variable in layer.non_trainable_variables]
    if not variables:
        return
    # This replica's copies as tensors on this replica's device: a variable read
    # carries no device of its own, and MultiWorkerMirroredStrategy's all-reduce
    # needs one ("destinations can not be empty").
    local = [tf.identity(variable.value) for variable in variables]
    means = context.all_reduce("MEAN", local)
    for variable, mean in zip(variables, means):
        variable.assign(mean)


def is_inexact_batch_norm(layer) -> bool:
    """True for a stock Keras BatchNormalization (inexact second derivatives)."""
    return (isinstance(layer, keras.layers.BatchNormalization)
            and not isinstance(layer, BatchNorm))


def exact_batch_norm(model: keras.Model) -> keras.Model:
    """A clone of a functional ``model`` with every stock BatchNormalization
    replaced by :class:`BatchNorm` (same config, same weights)."""
    def clone(layer):
        if is_inexact_batch_norm(layer):
            return BatchNorm.from_config(layer.get_config())
        return layer.__class__.from_config(layer.get_config())

    cloned = keras.models.clone_model(model, clone_function=clone)
    cloned.set_weights(model.get_weights())
    return cloned
