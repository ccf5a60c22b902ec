"""``train_and_evaluate(config, workdir)``: one SFOCUS (or baseline) training run.

It writes a run directory (``sfocus_tf.configs.run_dir``: config.json, backup/,
tensorboard/, attention/, model.keras, metrics.json), each file atomically.

Restarting with the same workdir resumes from the newest backup, at the step it was
taken (``fit_from_backup``), provided the config is the one the workdir was trained
with (``check_config``).
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
from absl import logging

import keras_models
from sfocus_tf import data
from sfocus_tf.training import distribute, hparams, tensorboard_logs
from sfocus_tf.evaluation import overlays
from sfocus_tf.evaluation.evaluate import evaluate
from sfocus_tf.common import files
from sfocus_tf.configs import run_dir
from sfocus_tf.training.checkpointing import BackupAndResume
from sfocus_tf.training.attention_diagnostics import AttentionDiagnostics
from sfocus_tf.common.files import save_model, write_json
from sfocus_tf.training.finite import StopOnNonFiniteLoss, check_finite_weights
from sfocus_tf.modeling.sfocus_model import SFocusModel
from sfocus_tf.configs.train_config import TrainConfig, config_changes


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
                                weight_decay=loss_decay, **config.backbone_options())
    return SFocusModel(backbone, preset.num_classes, config.sfocus, weight_decay=loss_decay)


def compiled_model(config: TrainConfig, preset, steps_per_epoch: int) -> SFocusModel:
    """``build_model`` + ``compile`` under the config's dtype policy (mixed precision
    is set per layer at construction). Call it inside the strategy's scope."""
    with dtype_policy(config.mixed_precision):
        model = build_model(config, preset)
        model.compile(optimizer=make_optimizer(config, steps_per_epoch),
                      jit_compile=config.jit_compile)
        # Built now, in the strategy's scope, so fit need not build it from an extra
        # pass over the training data (SFocusModel._maybe_symbolic_build).
        model.optimizer.build(model.trainable_variables)
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
    """Each epoch: overlays of a fixed batch of test images, as PNG and in TensorBoard
    (at the optimizer step, the step axis of ``tensorboard_logs``)."""

    def __init__(self, images, labels, class_names, png_dir, tensorboard_dir):
        super().__init__()
        self.images, self.labels, self.class_names = images, labels, class_names
        self.png_dir = png_dir
        self.writer = tf.summary.create_file_writer(
            os.path.join(tensorboard_dir, tensorboard_logs.ATTENTION))

    def render(self) -> np.ndarray:
        return overlays.render(self.model, self.images, self.labels, self.class_names)

    def on_epoch_end(self, epoch, logs=None):
        grid = self.render()
        overlays.save_png(os.path.join(self.png_dir, f"epoch-{epoch + 1:03d}.png"), grid)
        with self.writer.as_default():
            tf.summary.image("true_vs_confusing", grid[None], step=_trained_steps(self.model),
                             description=OVERLAYS_DESCRIPTION)
        self.writer.flush()


OVERLAYS_DESCRIPTION = (
    "Each row: a test image, then standard Grad-CAM maps of its true class and of its "
    "most confusing class, at the last and at the inner layer (the maps as_inner and ac "
    "act on); a hatched 'all zero' panel is a map that is zero everywhere.")


def make_datasets(config: TrainConfig, preset: data.DatasetPreset):
    """(endless shuffled training batches, validation batches, steps per epoch);
    validation is None with ``full_training_set``.

    ``preset`` is ``config.preset()``, looked up once per run and passed down."""
    return (training_batches(config, preset), validation_batches(config, preset),
            steps_per_epoch(config, preset))


def evaluation_batches(config: TrainConfig, preset: data.DatasetPreset, split: str, *,
                       with_boxes: bool = False) -> tf.data.Dataset:
    return data.load(preset, split, config.batch_size, training=False,
                     data_dir=config.data_dir, with_boxes=with_boxes,
                     skip_bad_images=config.skip_bad_images)


def validation_batches(config: TrainConfig, preset: data.DatasetPreset):
    """The validation images held out of training; None with ``full_training_set``."""
    if config.full_training_set:
        return None
    return evaluation_batches(config, preset, data.VALIDATION)


def _training_split(config: TrainConfig) -> str:
    return data.ALL_TRAINING if config.full_training_set else "train"


def training_batches(config: TrainConfig, preset: data.DatasetPreset,
                     skip: int = 0) -> tf.data.Dataset:
    """The endless seeded training stream, from its ``skip``-th batch on.

    A new dataset each call: the shuffle and the augmentation seeds draw new numbers
    for each iterator over one dataset object, so only a fresh one starts the
    stream as an uninterrupted run saw it. The skipped batches are still read and
    augmented (tf.data cannot jump), at the input pipeline's speed.
    """
    train = data.load(preset, _training_split(config), config.batch_size, training=True,
                      seed=config.seed, train_examples=config.train_examples,
                      repeat=True, data_dir=config.data_dir,
                      skip_bad_images=config.skip_bad_images)
    return train.skip(skip) if skip else train


def steps_per_epoch(config: TrainConfig, preset: data.DatasetPreset) -> int:
    """``config.steps_per_epoch``, or one pass over the training set (a resolved config)."""
    if config.steps_per_epoch is not None:
        return config.steps_per_epoch
    count = data.num_examples(preset, _training_split(config), data_dir=config.data_dir,
                              train_examples=config.train_examples)
    if not count:
        raise ValueError(f"cannot tell the size of {config.dataset}: set steps_per_epoch")
    return max(1, count // config.batch_size)


class ConfigChangedError(ValueError):
    """A workdir was trained with another config (a ValueError: one line in the CLI)."""


def check_config(config: TrainConfig, workdir: str, allow_change: bool = False) -> None:
    """Raises ``ConfigChangedError`` naming the fields that differ when ``workdir``
    holds training (a backup or a final model) of another config; with
    ``allow_change`` logs them instead. A workdir with a config.json and nothing
    trained yet (stopped before its first backup) takes the new config."""
    stored = run_dir.stored_config(workdir)
    trained = stored is not None and run_dir.holds_training(workdir)
    changes = config_changes(stored, config) if trained else []
    if not changes:
        return
    if not allow_change:
        raise ConfigChangedError(
            f"workdir {workdir} was trained with a different config: {', '.join(changes)}"
            "; pass --allow_config_change (allow_config_change=True) to continue anyway")
    logging.warning("continuing %s with a changed config: %s", workdir, ", ".join(changes))


def train_and_evaluate(config: TrainConfig, workdir: str, *,
                       allow_config_change: bool = False) -> dict:
    """Trains ``config`` into ``workdir`` (resuming if it holds a backup), validating
    on the images held out of training, evaluates on the validation and the test split
    (``validation_*`` and ``test_*``), and returns the metrics it writes to
    ``metrics.json``.

    A workdir trained with another config is refused (``ConfigChangedError``)
    unless ``allow_config_change``; ``train_config.OPERATIONAL_FIELDS`` may always
    change. A NaN or Inf loss stops the run (``finite.NonFiniteError``)."""
    return train(config, workdir, allow_config_change=allow_config_change)[1]


def train(config: TrainConfig, workdir: str, *, allow_config_change: bool = False):
    """``train_and_evaluate``, returning ``(model, metrics)``.

    Under MultiWorkerMirroredStrategy every worker runs this, all of it (saving
    reads distributed variables, a collective every worker must join); the chief
    writes into ``workdir``, the others into temporary directories removed at the
    end, and all resume from the chief's backup.
    """
    preset = config.preset()  # the run's one look-up of its dataset, passed down
    config = config.resolve(preset)
    strategy = distribute.make_strategy(config.strategy)  # before any other TF work
    out = distribute.output_dir(workdir, strategy)
    try:
        return _train_in(config, strategy, preset=preset, workdir=workdir, out=out,
                         allow_config_change=allow_config_change)
    finally:
        if out != workdir:
            shutil.rmtree(out, ignore_errors=True)


def _train_in(config: TrainConfig, strategy, *, preset: data.DatasetPreset, workdir: str,
              out: str, allow_config_change: bool):
    check_config(config, workdir, allow_config_change)  # before config.json is replaced
    files.prepare_output_dir(out)  # writable (else one line), no leftover temporaries
    write_json(run_dir.path(out, run_dir.CONFIG), config.to_dict())
    hparams.write_run(run_dir.path(out, run_dir.TENSORBOARD), config)
    keras.utils.set_random_seed(config.seed)
    test, epoch_steps = evaluation_batches(config, preset, "test"), steps_per_epoch(config, preset)
    validation = validation_batches(config, preset)
    with strategy.scope():
        model = compiled_model(config, preset, epoch_steps)
        backup = BackupAndResume(run_dir.path(out, run_dir.BACKUP), config.backup_every_steps,
                                 restore_dir=run_dir.path(workdir, run_dir.BACKUP))
        backup.restore(model)
        resumed_from = (backup.initial_epoch, backup.initial_step, _trained_steps(model))
        # The overlays watch validation images: the test split is read once, at the end.
        images, labels = data.first_examples(test if validation is None else validation,
                                             config.attention_images)
        overlay_callback = AttentionImages(
            images, labels, data.class_names(preset, data_dir=config.data_dir),
            run_dir.path(out, run_dir.ATTENTION), run_dir.path(out, run_dir.TENSORBOARD))
        overlay_callback.set_model(model)  # for the final overlays if fit does not run
        tensorboard = tensorboard_logs.TensorBoard(run_dir.path(out, run_dir.TENSORBOARD))
        callbacks = [StopOnNonFiniteLoss(),  # first: no callback sees a non-finite step
                     _diagnostics(config, preset, validation),  # before what reads logs
                     backup, tensorboard, overlay_callback]
        fit_from_backup(model, config, preset=preset, steps_per_epoch=epoch_steps,
                        backup=backup, validation_data=validation, callbacks=callbacks)
        train_seconds, started = backup.train_seconds, time.perf_counter()
        metrics = evaluate(model, test, steps=config.eval_steps,
                           attention_dataset=_boxed_set(config, preset, "test"))
        if validation is not None:
            metrics.update(evaluate(
                model, validation, steps=config.eval_steps, prefix=data.VALIDATION,
                attention_dataset=_boxed_set(config, preset, data.VALIDATION)))
    metrics.update(epochs=config.epochs, steps_per_epoch=epoch_steps,
                   resumed_from_epoch=resumed_from[0], resumed_from_step=resumed_from[1],
                   resumed_from_global_step=resumed_from[2],
                   replicas=strategy.num_replicas_in_sync,
                   train_seconds=train_seconds,
                   eval_seconds=time.perf_counter() - started,
                   weights_checksum=weights_checksum(model), history=backup.history)
    check_finite_weights(model, run_dir.MODEL)
    save_model(model, run_dir.path(out, run_dir.MODEL))
    overlays.save_png(run_dir.path(out, run_dir.ATTENTION, run_dir.FINAL_OVERLAYS),
                      overlay_callback.render())
    tensorboard_logs.write_final_metrics(run_dir.path(out, run_dir.TENSORBOARD), metrics,
                                         _trained_steps(model))
    write_json(run_dir.path(out, run_dir.METRICS), metrics)  # NaN -> null
    return model, metrics


def fit_from_backup(model, config: TrainConfig, *, preset: data.DatasetPreset,
                    steps_per_epoch: int, backup: BackupAndResume, validation_data,
                    callbacks) -> None:
    """Trains from the restored backup's step to the last epoch, as if never stopped:
    first the rest of the interrupted epoch (a ``fit`` of its remaining steps), then
    the other epochs; each ``fit`` reads the training stream from the batch after
    the last one trained on (the optimizer's step count)."""
    fit = dict(validation_data=validation_data, validation_steps=config.eval_steps,
               callbacks=callbacks, shuffle=False,  # the pipeline shuffles
               verbose=1 if sys.stdout.isatty() else 2)
    epoch, remaining = backup.initial_epoch, steps_per_epoch - backup.initial_step
    if backup.initial_step and remaining > 0 and epoch < config.epochs:
        model.fit(training_batches(config, preset, _trained_steps(model)), epochs=epoch + 1,
                  initial_epoch=epoch, steps_per_epoch=remaining, **fit)
        epoch += 1
    elif backup.initial_step:  # an override shortened the epochs: this one is over
        epoch += 1
    if epoch < config.epochs:
        model.fit(training_batches(config, preset, _trained_steps(model)),
                  epochs=config.epochs, initial_epoch=epoch, steps_per_epoch=steps_per_epoch,
                  **fit)


DIAGNOSTIC_EXAMPLES = 256


def _diagnostics(config: TrainConfig, preset: data.DatasetPreset, validation):
    """The per-epoch attention diagnostics on the first ``DIAGNOSTIC_EXAMPLES`` training
    images (unaugmented) and validation images."""
    count = DIAGNOSTIC_EXAMPLES
    train = data.first_examples(
        evaluation_batches(config, preset, _training_split(config)), count)
    held_out = None if validation is None else data.first_examples(validation, count)
    return AttentionDiagnostics(train, held_out)


def _trained_steps(model) -> int:
    return int(model.optimizer.iterations.numpy())


def _boxed_set(config: TrainConfig, preset: data.DatasetPreset, split: str):
    """A split's batches with their boxes, for localisation metrics; None without boxes
    (``fit`` would read boxes as sample weights, so its validation never gets them)."""
    if not preset.has_boxes:
        return None
    return evaluation_batches(config, preset, split, with_boxes=True)


def weights_checksum(model) -> str:
    """A digest of every weight's bytes: equal on all workers of a synchronous run."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()[:16]
