"""What a run shows of its attention each epoch: overlays of fixed images (PNG and
TensorBoard), and the attention diagnostics (``sfocus_tf.modeling.diagnostics``) in
fit's logs, so that ``History``, the run's ``metrics.json`` history and TensorBoard
record them beside the loss (the validation batch's with Keras' ``val_`` prefix).
"""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

from sfocus_tf.evaluation import overlays
from sfocus_tf.modeling.diagnostics import diagnostics
from sfocus_tf.training import tensorboard_tags


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


class AttentionImages(keras.callbacks.Callback):
    """Each epoch: overlays of a fixed batch of images, as one PNG and in TensorBoard
    (``attention/``, at the optimizer step, the step axis of ``tensorboard_logs``) as
    pictures of ``overlays.ROWS_PER_PAGE`` examples, one tag each
    (``overlays/examples_1-4``, ...), so that each is legible on its card."""

    def __init__(self, images, labels, class_names, png_dir, tensorboard_dir, boxes=None):
        super().__init__()
        self.images, self.labels, self.class_names = images, labels, class_names
        self.boxes = boxes  # drawn on the overlays where the data has them
        self.png_dir = png_dir
        self.writer = tf.summary.create_file_writer(
            os.path.join(tensorboard_dir, tensorboard_tags.ATTENTION))

    def shown(self) -> dict:
        return overlays.shown_maps(self.model, self.images, self.labels, self.class_names,
                                   self.boxes)

    def render(self) -> np.ndarray:
        return overlays.overlay_grid(**self.shown())

    def on_epoch_end(self, epoch, logs=None):
        shown = self.shown()
        overlays.save_png(os.path.join(self.png_dir, f"epoch-{epoch + 1:03d}.png"),
                          overlays.overlay_grid(**shown))
        step = int(self.model.optimizer.iterations.numpy())
        with self.writer.as_default():
            for tag, page in zip(page_tags(len(shown["captions"])),
                                 overlays.overlay_pages(**shown)):
                tf.summary.image(tag, page[None], step=step, description=OVERLAYS_DESCRIPTION)
        self.writer.flush()


def page_tags(examples: int, rows: int = overlays.ROWS_PER_PAGE) -> list:
    """``overlays/examples_<first>-<last>`` of each picture (numbered from 1)."""
    return [f"{tensorboard_tags.OVERLAYS}/examples_{start + 1}-{min(start + rows, examples)}"
            for start in range(0, examples, rows)]


OVERLAYS_DESCRIPTION = (
    "Each row: an image, then standard Grad-CAM maps of its true class and of its most "
    "confusing class, at the last and at the inner layer (the maps as_inner and ac act "
    "on), under the two classes' probabilities; a hatched 'all zero' panel is a map "
    "that is zero everywhere. The bar below: dark is 0 (not attended), bright 1.")
