"""A training run's directory: the names of what it holds, and reading it back.

    config.json     the resolved TrainConfig (``load_config``)
    backup/         weights + optimizer state for resuming (checkpointing.BackupAndResume)
    tensorboard/trial/  the HParams trial, above train/, validation/, test/ (every loss
                    term and metric) and attention/ (the overlays): tensorboard_logs
    attention/      epoch-NNN.png overlays and final.png: image | true | confusing class,
                    last and inner layer
    model.keras     the final model (``load_run``)
    metrics.json    test accuracy, loss terms and attention metrics

Training writes it (``training.train_and_evaluate``); evaluation, export, tuning and
reproduction read it through this module. Any ``tf.io.gfile`` path works.
"""

from __future__ import annotations

import keras

from sfocus_tf.common.files import exists, join, local_copy, read_json
from sfocus_tf.configs.train_config import TrainConfig

CONFIG = "config.json"
BACKUP = "backup"
TENSORBOARD = "tensorboard"
# In TENSORBOARD: a run's HParams session sits above the folders it reads its metrics
# from; at TensorBoard's logdir root (run ".") it would find none.
TRIAL = "trial"
ATTENTION = "attention"
FINAL_OVERLAYS = "final.png"  # in ATTENTION
MODEL = "model.keras"
METRICS = "metrics.json"


def path(workdir: str, *names: str) -> str:
    """``workdir/names...``, e.g. ``path(workdir, ATTENTION, FINAL_OVERLAYS)``."""
    return join(workdir, *names)


def tensorboard_dir(workdir: str) -> str:
    """``workdir/tensorboard/trial``: the run's TensorBoard folders and its trial."""
    return path(workdir, TENSORBOARD, TRIAL)


def stored_config(workdir: str) -> dict | None:
    """``config.json`` as written (None if absent), for comparing with a new config
    field by field, fields a newer version added included."""
    return read_json(path(workdir, CONFIG))


def load_config(workdir: str) -> TrainConfig:
    """The TrainConfig the run in ``workdir`` was trained with."""
    stored = stored_config(workdir)
    if stored is None:
        raise FileNotFoundError(f"{workdir} holds no training run ({CONFIG})")
    return TrainConfig.from_dict(stored, saved=True)


def read_metrics(workdir: str) -> dict | None:
    """``metrics.json`` of a finished run; None while it is not finished."""
    return read_json(path(workdir, METRICS))


def holds_training(workdir: str) -> bool:
    """True once ``workdir`` has a backup or a final model."""
    return any(exists(path(workdir, name)) for name in (BACKUP, MODEL))


def load_run(workdir: str) -> tuple[TrainConfig, keras.Model]:
    """``(config, model)`` of a finished training run."""
    model_path = path(workdir, MODEL)
    if stored_config(workdir) is None or not exists(model_path):
        raise FileNotFoundError(f"{workdir} holds no finished run ({CONFIG}, {MODEL})")
    with local_copy(model_path) as local:  # any tf.io.gfile file system
        return load_config(workdir), keras.models.load_model(local)
