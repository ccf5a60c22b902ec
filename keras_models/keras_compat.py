"""Every use of Keras' private API in this repository, in one place.

Keras 3 has no public hook for what these do; each was checked against the Keras
release lines in ``CHECKED_KERAS`` (``sfocus_tf.common.versions`` pins the same line, and
``tests/test_keras_compat.py`` checks that every private name used here still exists
with the signature relied on). Upgrading Keras means re-checking this file.

It lives in keras_models, the lowest package that needs it: sfocus_tf imports
keras_models, so a module of sfocus_tf would make keras_models import sfocus_tf back.

- ``BatchNormalization._moments`` is overridden by ``keras_models.BatchNorm`` (exact
  second derivatives), which also reads ``_reduction_axes`` and ``synchronized`` and
  tracks its own variables (``track_variable``).
- ``Trainer._maybe_symbolic_build`` is overridden by ``sfocus_tf.SFocusModel`` (no
  extra pass over the training data under tf.distribute) and patched for
  MultiWorkerMirroredStrategy (``patch_trainer_for_multi_worker``), as is the trainer's
  ``reduce_per_replica``.
- ``compile()``'s recorded arguments (``record_compile_argument``) and a symbolic
  tensor's layer (``layer_of``).
"""

from __future__ import annotations

import keras
import tensorflow as tf

CHECKED_KERAS = ("3.15.",)
# (class, private method, its parameters) that subclasses here override.
OVERRIDDEN = (
    (keras.layers.BatchNormalization, "_moments", ("self", "inputs", "mask")),
    (keras.Model, "_maybe_symbolic_build", ("self", "iterator", "data_batch")),
)


def layer_of(tensor) -> keras.layers.Layer:
    """The layer that produced a symbolic Keras tensor."""
    return tensor._keras_history[0]


def record_compile_argument(model: keras.Model, name: str, value) -> None:
    """Makes ``model.get_compile_config()`` (saved in .keras files) hold ``value`` for
    ``name``, when ``compile`` passed Keras another value."""
    model._compile_config.config[name] = value


def track_variable(layer: keras.layers.Layer, variable) -> None:
    """Adds a variable a layer created itself to the layer's weights."""
    layer._track_variable(variable)


def reduction_axes(layer: keras.layers.BatchNormalization) -> list:
    """The axes BatchNormalization reduces over (all but its feature axis)."""
    return layer._reduction_axes


def patch_trainer_for_multi_worker() -> None:
    """Makes Keras 3 ``fit``/``evaluate`` work under MultiWorkerMirroredStrategy.

    keras-team/keras#20585, two places in Keras' TensorFlow trainer:

    - before the first step, ``_maybe_symbolic_build`` averages the first data
      batch across replicas, eagerly; under the multi-worker strategy that
      reduction rejects the per-replica batch. Any replica's batch serves to build.
    - each step's logs are reduced with ``strategy.reduce("MEAN", value, axis=0)``,
      which fails on the scalar logs every model returns ("Invalid reduction
      dimension 0 for input with 0 dimensions"). The mean across replicas
      (``axis=None``) is what is meant.

    Applied once (tests/test_distribute.py runs two workers).
    """
    from keras.src.backend.tensorflow import trainer as tf_trainer

    if getattr(tf_trainer.reduce_per_replica, "sfocus_patched", False):
        return
    if not keras.__version__.startswith(CHECKED_KERAS):
        raise RuntimeError(f"the MultiWorkerMirroredStrategy patch was checked on Keras "
                           f"{CHECKED_KERAS}, not {keras.__version__}; check "
                           "keras-team/keras#20585 and tests/test_distribute.py")
    multi_worker = tf_trainer._collective_all_reduce_multi_worker
    original_reduce = tf_trainer.reduce_per_replica
    original_build = tf_trainer.TensorFlowTrainer._maybe_symbolic_build

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and multi_worker(strategy):
            return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None),
                                         values)
        return original_reduce(values, strategy, reduction)

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if iterator is not None and strategy is not None and multi_worker(strategy):
            for _, _, it in iterator:
                data_batch = tf.nest.map_structure(
                    lambda v: strategy.experimental_local_results(v)[0], next(it))
                break
            iterator = None
        return original_build(self, iterator=iterator, data_batch=data_batch)

    reduce_per_replica.sfocus_patched = True
    tf_trainer.reduce_per_replica = reduce_per_replica
    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
