"""``train_and_evaluate(config, workdir)``: one SFOCUS (or baseline) training run.

What it writes into ``workdir``::

    config.json          the resolved TrainConfig
    backup/              weights + optimizer state for resuming (BackupAndResume)
    tensorboard/         scalars of every loss term and metric; attention images
    attention/           epoch-NNN.png overlays: image | true class | confusing class
    model.keras          the final model (atomic)
    metrics.json         test accuracy, loss terms and attention metrics (atomic)

Restarting with the same workdir resumes from the newest backup.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import time

import keras
import numpy as np
import tensorflow as tf

import keras_models
from sfocus_tf import data, distribute, evaluation, files, overlays
from sfocus_tf.checkpointing import BackupAndResume, save_model, write_json
from sfocus_tf.model import SFocusModel
from sfocus_tf.train_config import TrainConfig


def learning_rate_schedule(config: TrainConfig, steps_per_epoch: int):
    total = config.epochs * steps_per_epoch
    warmup = int(config.warmup_epochs * steps_per_epoch)
    if config.schedule == "cosine":
        if warmup:
            return keras.optimizers.schedules.CosineDecay(
                0.0, max(total - warmup, 1), warmup_target=config.learning_rate,
                warmup_steps=warmup)
        return keras.optimizers.schedules.CosineDecay(config.learning_rate, total)
    if config.schedule == "multistep" and config.milestones:
        boundaries = [m * steps_per_epoch for m in config.milestones]
        values = [config.learning_rate * 0.1 ** i for i in range(len(boundaries) + 1)]
        return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    return config.learning_rate


def make_optimizer(config: TrainConfig, steps_per_epoch: int):
    """SGD and Adam take weight decay as L2 terms in the loss (``model.losses``);
    AdamW applies its own decoupled decay."""
    lr = learning_rate_schedule(config, steps_per_epoch)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=config.momentum, nesterov=True)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(lr)
    return keras.optimizers.AdamW(lr, weight_decay=config.weight_decay)


def build_model(config: TrainConfig, preset) -> SFocusModel:
    loss_decay = 0.0 if config.optimizer == "adamw" else config.weight_decay
    backbone = keras_models.get(config.model, preset.image_size, preset.num_classes,
                                weight_decay=loss_decay)
    return SFocusModel(backbone, preset.num_classes, config.sfocus, weight_decay=loss_decay)


def compiled_model(config: TrainConfig, preset, steps_per_epoch: int) -> SFocusModel:
    """``build_model`` + ``compile`` under the config's dtype policy (mixed precision
    is set per layer at construction). Call it inside the strategy's scope."""
    with dtype_policy(config.mixed_precision):
        model = build_model(config, preset)
        model.compile(optimizer=make_optimizer(config, steps_per_epoch),
                      jit_compile=config.jit_compile)
    return model


@contextlib.contextmanager
def dtype_policy(name: str):
    """Sets the global Keras dtype policy for the run, and restores it."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32" if name == "none" else name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


class AttentionImages(keras.callbacks.Callback):
    """Each epoch: overlays of a fixed batch of test images, as PNG and in TensorBoard."""

    def __init__(self, images, labels, class_names, png_dir, tensorboard_dir):
        super().__init__()
        self.images, self.labels, self.class_names = images, labels, class_names
        self.png_dir = png_dir
        self.writer = tf.summary.create_file_writer(os.path.join(tensorboard_dir, "attention"))

    def render(self) -> np.ndarray:
        return overlays.render(self.model, self.images, self.labels, self.class_names)

    def on_epoch_end(self, epoch, logs=None):
        grid = self.render()
        overlays.save_png(os.path.join(self.png_dir, f"epoch-{epoch + 1:03d}.png"), grid)
        with self.writer.as_default():
            tf.summary.image("true_vs_confusing", grid[None], step=epoch + 1)
        self.writer.flush()


def make_datasets(config: TrainConfig):
    """(endless shuffled training batches, test batches, steps per epoch)."""
    kwargs = dict(data_dir=config.data_dir, image_size=config.image_size,
                  skip_bad_images=config.skip_bad_images)
    train = data.load(config.dataset, None, config.batch_size, training=True,
                      seed=config.seed, repeat=True, **kwargs)
    test = data.load(config.dataset, None, config.batch_size, training=False, **kwargs)
    return train, test, steps_per_epoch(config)


def steps_per_epoch(config: TrainConfig) -> int:
    """``config.steps_per_epoch``, or one pass over the training set (a resolved config)."""
    if config.steps_per_epoch is not None:
        return config.steps_per_epoch
    count = data.num_examples(config.dataset, data_dir=config.data_dir)
    if not count:
        raise ValueError(f"cannot tell the size of {config.dataset}: set steps_per_epoch")
    return max(1, count // config.batch_size)


def train_and_evaluate(config: TrainConfig, workdir: str) -> dict:
    """Trains ``config`` into ``workdir`` (resuming if it holds a backup), evaluates
    on the test split, and returns the metrics it writes to ``metrics.json``."""
    return train(config, workdir)[1]


def train(config: TrainConfig, workdir: str):
    """``train_and_evaluate``, returning ``(model, metrics)``.

    Under MultiWorkerMirroredStrategy every worker runs this, all of it (saving
    reads distributed variables, a collective every worker must join); the chief
    writes into ``workdir``, the others into temporary directories removed at the
    end, and all resume from the chief's backup.
    """
    config = config.resolve()
    strategy = distribute.make_strategy(config.strategy)  # before any other TF work
    out = distribute.output_dir(workdir, strategy)
    try:
        return _train_in(config, strategy, workdir, out)
    finally:
        if out != workdir:
            shutil.rmtree(out, ignore_errors=True)


def _train_in(config: TrainConfig, strategy, workdir: str, out: str):
    files.prepare_output_dir(out)  # writable (else one line), no leftover temporaries
    write_json(os.path.join(out, "config.json"), config.to_dict())
    keras.utils.set_random_seed(config.seed)
    train_data, test, steps_per_epoch = make_datasets(config)
    with strategy.scope():
        model = compiled_model(config, config.preset(), steps_per_epoch)
        backup = BackupAndResume(os.path.join(out, "backup"), config.backup_every_steps,
                                 restore_dir=os.path.join(workdir, "backup"))
        images, labels = data.first_examples(test, config.attention_images)
        overlay_callback = AttentionImages(
            images, labels, data.class_names(config.dataset, data_dir=config.data_dir),
            os.path.join(out, "attention"), os.path.join(out, "tensorboard"))
        callbacks = [backup, keras.callbacks.TensorBoard(os.path.join(out, "tensorboard")),
                     overlay_callback]
        started, resumed_from = time.perf_counter(), backup.initial_epoch
        if resumed_from < config.epochs:
            model.fit(train_data, epochs=config.epochs, steps_per_epoch=steps_per_epoch,
                      initial_epoch=resumed_from, validation_data=test,
                      validation_steps=config.eval_steps, callbacks=callbacks,
                      shuffle=False,  # the pipeline shuffles
                      verbose=1 if sys.stdout.isatty() else 2)
        else:
            backup.restore(model)  # already trained: evaluate the final weights
            overlay_callback.set_model(model)  # fit() did not run to set it
        train_seconds = time.perf_counter() - started
        started = time.perf_counter()
        metrics = evaluation.evaluate(model, test, config.eval_steps, _boxed_test_set(config))
    metrics.update(epochs=config.epochs, steps_per_epoch=steps_per_epoch,
                   resumed_from_epoch=resumed_from, replicas=strategy.num_replicas_in_sync,
                   train_seconds=train_seconds, eval_seconds=time.perf_counter() - started,
                   weights_checksum=weights_checksum(model), history=backup.history)
    save_model(model, os.path.join(out, "model.keras"))
    overlays.save_png(os.path.join(out, "attention", "final.png"), overlay_callback.render())
    write_json(os.path.join(out, "metrics.json"), metrics)
    return model, metrics


def _boxed_test_set(config: TrainConfig):
    """The test batches with their boxes, for localisation metrics; None without boxes
    (``fit`` would read boxes as sample weights, so validation never gets them)."""
    if not config.preset().has_boxes:
        return None
    return data.load(config.dataset, None, config.batch_size, training=False,
                     data_dir=config.data_dir, image_size=config.image_size, with_boxes=True)


def weights_checksum(model) -> str:
    """A digest of every weight's bytes: equal on all workers of a synchronous run."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()[:16]
