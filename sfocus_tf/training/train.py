"""``train_and_evaluate(config, workdir)``: one SFOCUS (or baseline) training run.

It writes a run directory (``sfocus_tf.configs.run_dir``: config.json, backup/,
tensorboard/, attention/, model.keras, metrics.json), each file atomically.

Restarting with the same workdir resumes from the newest backup, at the step it was
taken (``resume.fit_from_backup``), provided the config is the one the workdir was
trained with (``resume.check_config``).
"""

from __future__ import annotations

import hashlib
import shutil
import time

import keras
import numpy as np

from sfocus_tf import data
from sfocus_tf.common import run_lock
from sfocus_tf.common.files import prepare_output_dir, save_model, write_json
from sfocus_tf.configs import run_dir
from sfocus_tf.configs.train_config import TrainConfig
from sfocus_tf.evaluation import overlays
from sfocus_tf.evaluation.evaluate import evaluate
from sfocus_tf.training import distribute, hparams, inputs, tensorboard_logs
from sfocus_tf.training.attention_callbacks import AttentionDiagnostics, AttentionImages
from sfocus_tf.training.build import compiled_model
from sfocus_tf.training.checkpointing import BackupAndResume
from sfocus_tf.training.finite import StopOnNonFiniteLoss, check_finite_weights
from sfocus_tf.training.resume import check_config, fit_from_backup, trained_steps


@data.labels_read_once()  # the run's pipelines carve from the same labels
def train_and_evaluate(config: TrainConfig, workdir: str, *,
                       allow_config_change: bool = False, hparams_table: bool = True) -> dict:
    """Trains ``config`` into ``workdir`` (resuming if it holds a backup), validating
    on the images held out of training, evaluates on the validation and the test split
    (``validation_*`` and ``test_*``), and returns the metrics it writes to
    ``metrics.json``.

    A workdir another process is writing is refused at once (``run_lock``); one
    trained with another config is refused too (``ConfigChangedError``)
    unless ``allow_config_change``; ``train_config.OPERATIONAL_FIELDS`` may always
    change. A NaN or Inf loss stops the run (``finite.NonFiniteError``).

    The run is one HParams trial named ``workdir``, ended with its status; a finished
    run writes its own HParams table unless ``hparams_table`` is False (a study's
    runs: the study writes one table over them all).

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
        with run_lock.exclusive(out, "a training run"):
            check_config(config, workdir, allow_config_change)  # before config.json changes
            _start(config, out)
            with hparams.Trial(run_dir.tensorboard_dir(out), config,
                               name=workdir.rstrip("/") or workdir) as trial:
                with strategy.scope():
                    model, metrics, overlay_images = _train(config, preset, strategy,
                                                            workdir, out)
                    metrics.update(_evaluate(model, config, preset))
                _finish(model, metrics, overlay_images, out)
                trial.results = metrics if hparams_table else None
        return metrics
    finally:
        if out != workdir:
            shutil.rmtree(out, ignore_errors=True)


def _start(config: TrainConfig, out: str) -> None:
    """A writable run directory (else one line) holding the run's config."""
    prepare_output_dir(out)  # no leftover temporaries either
    write_json(run_dir.path(out, run_dir.CONFIG), config.to_dict())
    keras.utils.set_random_seed(config.seed)


def _train(config: TrainConfig, preset, strategy, workdir: str, out: str):
    """The model trained from the newest backup to the last epoch; returns it, the
    run's bookkeeping metrics and the overlay callback (for the final overlays)."""
    epoch_steps = inputs.steps_per_epoch(config, preset)
    validation = inputs.validation_batches(config, preset)
    model = compiled_model(config, preset, epoch_steps)
    backup = BackupAndResume(run_dir.path(out, run_dir.BACKUP), config.backup_every_steps,
                             restore_dir=run_dir.path(workdir, run_dir.BACKUP))
    backup.restore(model)
    resumed_from = dict(resumed_from_epoch=backup.initial_epoch,
                        resumed_from_step=backup.initial_step,
                        resumed_from_global_step=trained_steps(model))
    overlay_images = _overlay_callback(config, preset, validation, out)
    overlay_images.set_model(model)  # for the final overlays if fit does not run
    callbacks = [StopOnNonFiniteLoss(),  # first: no callback sees a non-finite step
                 AttentionDiagnostics(*inputs.diagnostic_batches(config, preset, validation)),
                 backup,  # after the diagnostics, which add to the logs it records
                 tensorboard_logs.TensorBoard(run_dir.tensorboard_dir(out)),
                 overlay_images]
    fit_from_backup(model, config, preset=preset, steps_per_epoch=epoch_steps,
                    backup=backup, validation_data=validation, callbacks=callbacks)
    metrics = dict(epochs=config.epochs, steps_per_epoch=epoch_steps, **resumed_from,
                   replicas=strategy.num_replicas_in_sync, train_seconds=backup.train_seconds,
                   history=backup.history)
    return model, metrics, overlay_images


def _overlay_callback(config: TrainConfig, preset, validation, out: str) -> AttentionImages:
    """Overlays of fixed validation images (test images with ``full_training_set``):
    the test split is read once, at the end. Their boxes are drawn where there are."""
    split = "test" if validation is None else data.VALIDATION
    shown = inputs.evaluation_batches(config, preset, split, with_boxes=preset.has_boxes)
    images, labels, *boxes = data.first_examples(shown, config.attention_images,
                                                 with_boxes=preset.has_boxes)
    return AttentionImages(images, labels, data.class_names(preset, data_dir=config.data_dir),
                           run_dir.path(out, run_dir.ATTENTION), run_dir.tensorboard_dir(out),
                           boxes=boxes[0] if boxes else None)


def _evaluate(model, config: TrainConfig, preset) -> dict:
    """``test_*`` (the test split, read here only) and ``validation_*`` metrics."""
    started = time.perf_counter()
    names = data.class_names(preset, data_dir=config.data_dir)
    metrics = evaluate(model, inputs.evaluation_batches(config, preset, "test"),
                       steps=config.eval_steps, class_names=names,
                       attention_dataset=inputs.boxed_batches(config, preset, "test"))
    validation = inputs.validation_batches(config, preset)
    if validation is not None:
        metrics.update(evaluate(
            model, validation, steps=config.eval_steps, prefix=data.VALIDATION,
            class_names=names,
            attention_dataset=inputs.boxed_batches(config, preset, data.VALIDATION)))
    metrics.update(eval_seconds=time.perf_counter() - started,
                   weights_checksum=weights_checksum(model))
    return metrics


def _finish(model, metrics: dict, overlay_images: AttentionImages, out: str) -> None:
    """The final model, overlays, TensorBoard figures and metrics.json, each written
    atomically; metrics.json last, as the mark of a finished run."""
    check_finite_weights(model, run_dir.MODEL)
    save_model(model, run_dir.path(out, run_dir.MODEL))
    overlays.save_png(run_dir.path(out, run_dir.ATTENTION, run_dir.FINAL_OVERLAYS),
                      overlay_images.render())
    tensorboard_logs.write_final_metrics(run_dir.tensorboard_dir(out), metrics,
                                         trained_steps(model))
    write_json(run_dir.path(out, run_dir.METRICS), metrics)  # NaN -> null


def weights_checksum(model) -> str:
    """A digest of every weight's bytes: equal on all workers of a synchronous run."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()[:16]
