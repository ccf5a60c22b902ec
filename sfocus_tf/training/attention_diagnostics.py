"""Per-epoch attention diagnostics (``sfocus_tf.modeling.diagnostics``) in fit's logs.

They go into the epoch's logs, so that ``History``, the run's ``metrics.json`` history
and TensorBoard record them beside the loss: the training batch's figures under their
own names, the validation batch's with Keras' ``val_`` prefix.
"""

from __future__ import annotations

import keras

from sfocus_tf.modeling.diagnostics import diagnostics


class AttentionDiagnostics(keras.callbacks.Callback):
    """At each epoch's end, the diagnostics of one fixed training batch (in training
    mode, BatchNorm statistics restored) and one fixed validation batch (in inference
    mode). Baselines compute no attention in training; their maps are still measured.
    Place it before the callbacks that read the logs (backups, TensorBoard)."""

    def __init__(self, train_batch, validation_batch=None):
        super().__init__()
        self.train_batch, self.validation_batch = train_batch, validation_batch

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        logs.update(diagnostics(self.model, *self.train_batch, training=True))
        if self.validation_batch is not None:
            figures = diagnostics(self.model, *self.validation_batch, training=False)
            logs.update({f"val_{name}": value for name, value in figures.items()})
