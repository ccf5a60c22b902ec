"""Resuming a run: the config must be the one the workdir trained with, and training
continues from the backup's step as if it had never stopped."""

from __future__ import annotations

import sys

from absl import logging

from sfocus_tf.configs import run_dir
from sfocus_tf.configs.train_config import TrainConfig, config_changes
from sfocus_tf.training.checkpointing import BackupAndResume
from sfocus_tf.training.inputs import training_batches


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


def fit_from_backup(model, config: TrainConfig, *, preset,
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
        model.fit(training_batches(config, preset, trained_steps(model)), epochs=epoch + 1,
                  initial_epoch=epoch, steps_per_epoch=remaining, **fit)
        epoch += 1
    elif backup.initial_step:  # an override shortened the epochs: this one is over
        epoch += 1
    if epoch < config.epochs:
        model.fit(training_batches(config, preset, trained_steps(model)),
                  epochs=config.epochs, initial_epoch=epoch, steps_per_epoch=steps_per_epoch,
                  **fit)


def trained_steps(model) -> int:
    return int(model.optimizer.iterations.numpy())
