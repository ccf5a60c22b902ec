"""BatchNormalization whose batch statistics are twice differentiable."""

from __future__ import annotations

import contextlib
import threading

import keras
from keras import ops

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
        # statistics (no communication per step, so the update may sit inside an
        # XLA-compiled step), and reading them outside a replica (saving,
        # get_weights, predict) averages the copies. Keras' default keeps one
        # unsynchronised copy per replica: workers then evaluate and save
        # different models.
        with keras.name_scope(self.name, caller=self):
            variable = keras.Variable(
                initializer=keras.initializers.get(kwargs["initializer"]),
                shape=kwargs["shape"], dtype=self.variable_dtype, trainable=False,
                autocast=False, aggregation="mean", synchronization="on_read", name=name)
        self._track_variable(variable)
        return variable

    def _moments(self, inputs, mask):
        if mask is not None or self.synchronized:
            return super()._moments(inputs, mask)
        tape = getattr(_HIDDEN_FROM, "tape", None)
        if tape is None:
            return self._batch_moments(inputs)
        with tape.stop_recording():
            return self._batch_moments(inputs)

    def _batch_moments(self, inputs):
        axes = self._reduction_axes
        mean = ops.mean(inputs, axis=axes, keepdims=True)
        variance = ops.mean(ops.square(inputs - mean), axis=axes, keepdims=True)
        return ops.squeeze(mean, axis=axes), ops.squeeze(variance, axis=axes)


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
