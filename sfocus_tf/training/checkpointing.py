"""A backup callback that lets a killed run resume at the step.

Every file is written atomically (``sfocus_tf.common.files``), so a reader never sees
half a file, and a run killed while writing leaves the previous version intact.
"""

from __future__ import annotations

import os
import re
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from sfocus_tf.common.files import atomic_path, json_safe, local_copy, read_json, write_json
from sfocus_tf.training.finite import check_finite_weights


class BackupError(ValueError):
    """Backups exist but none can be read."""


_BACKUP_FILE = re.compile(r"ckpt-(\d+)\.(weights\.h5|json)$")


class BackupAndResume(keras.callbacks.Callback):
    """Backs up the training state every ``save_every_steps`` steps and at every
    epoch end; ``restore(model)`` puts the newest backup back before ``fit``.

    Each backup is two files in ``backup_dir``: ``ckpt-<global step>.weights.h5``
    (weights and optimizer state) and then ``ckpt-<global step>.json``, its state:
    the epoch and the step in it, the global step, every finished epoch's logs, the
    running sums of the interrupted epoch's metrics, and the seconds spent training
    so far. ``latest.json`` is a copy of the newest state, for people and tools.
    The newest ``keep`` backups are kept; a backup whose files cannot be read is
    skipped with a warning, and the one before it restored.

    A restart continues at the step: the caller fits the rest of the interrupted
    epoch (``initial_epoch``, ``initial_step``) on data that skips the
    ``global_step`` batches already used, then the remaining epochs
    (``resume.fit_from_backup``). The metric sums put back at the start of the
    interrupted epoch make its logs those of a run never stopped.

    With several workers every worker must save (reading distributed variables is a
    collective operation all of them join): each writes to its own ``backup_dir``,
    and all restore from the chief's, ``restore_dir``.
    """

    def __init__(self, backup_dir: str, save_every_steps: int | None = None, keep: int = 2,
                 restore_dir: str | None = None):
        super().__init__()
        self.backup_dir = backup_dir
        self.restore_dir = restore_dir or backup_dir
        self.save_every_steps = save_every_steps
        self.keep = keep
        self._state = {"epoch": 0, "step": 0, "global_step": 0, "weights": None,
                       "history": {}}
        self._resume_at = None  # (epoch, step) whose metric sums go back in, once
        self._seconds_before = 0.0  # training seconds of the processes before this one
        self._started = None  # when this process started training

    @property
    def initial_epoch(self) -> int:
        """The epoch the restored backup is in (epochs before it are finished)."""
        return self._state["epoch"]

    @property
    def initial_step(self) -> int:
        """Steps of ``initial_epoch`` done before the restored backup."""
        return self._state["step"]

    @property
    def history(self) -> dict:
        """``{epoch: logs}`` of every finished epoch, across restarts."""
        return {int(k): v for k, v in self._state["history"].items()}

    @property
    def train_seconds(self) -> float:
        """Seconds of training kept in the backups, across restarts, plus this
        process's (work lost to a kill, after the last backup, is not counted)."""
        running = time.perf_counter() - self._started if self._started else 0.0
        return self._seconds_before + running

    # -- restoring -----------------------------------------------------------

    def restore(self, model: keras.Model) -> bool:
        """Loads the newest readable backup into ``model`` (weights and optimizer
        state); False if there is none. Raises ``BackupError`` if backups exist but
        none can be read."""
        unreadable = []
        for path, state in self._saved_states():
            try:
                if isinstance(state, Exception):
                    raise state
                _load_weights(model, os.path.join(self.restore_dir, state["weights"]))
                resume_at = (int(state["epoch"]), int(state["step"]))
                history = dict(state["history"])
            except (OSError, ValueError, KeyError, TypeError) as error:
                unreadable.append(path)
                logging.warning("backup %s cannot be read (%s); falling back to the "
                                "previous one", path, _first_line(error))
                continue
            self._state = dict(state, history=history)
            self._resume_at = resume_at
            self._seconds_before = state.get("train_seconds", 0.0)
            if unreadable:
                logging.warning("resuming from the backup at step %d, %s",
                                state["global_step"], path)
            return True
        if unreadable:
            raise BackupError(f"no backup in {self.restore_dir} can be read (tried "
                              f"{', '.join(unreadable)}); move the folder away to start "
                              "over")
        return False

    def _saved_states(self):
        """(path of the state file, state or the error reading it) of each backup,
        newest first; ``latest.json`` alone for backups written before each had its
        own state file. A weights file without its state is one being written when
        the run stopped: skipped."""
        names = _backups(self.restore_dir)
        for step in sorted(names, reverse=True):
            path = os.path.join(self.restore_dir, f"ckpt-{step}.json")
            if "json" in names[step]:
                yield path, _read_state(path)
        if not any("json" in kinds for kinds in names.values()):
            latest = os.path.join(self.restore_dir, "latest.json")
            state = _read_state(latest)
            if state is not None and (isinstance(state, Exception) or state["weights"]):
                yield latest, state

    # -- backing up ----------------------------------------------------------

    def on_train_begin(self, logs=None):
        if self._started is None:
            self._started = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._steps_in_epoch = epoch, 0
        if self._resume_at is not None and self._resume_at[0] == epoch:
            self._steps_in_epoch = self._resume_at[1]
            if self._steps_in_epoch:  # fit has just reset the metrics
                self._put_back_metric_sums(self._state.get("epoch_metrics"))
        self._resume_at = None

    def on_train_batch_end(self, batch, logs=None):
        self._steps_in_epoch += 1
        if self.save_every_steps and self._steps_in_epoch % self.save_every_steps == 0:
            self._save(self._epoch, self._steps_in_epoch)

    def on_epoch_end(self, epoch, logs=None):
        self._state["history"][str(epoch)] = {k: float(v) for k, v in (logs or {}).items()}
        self._save(epoch + 1, 0)

    def _save(self, epoch: int, step: int) -> None:
        check_finite_weights(self.model, "the backup")  # never over a good one
        global_step = int(self.model.optimizer.iterations.numpy())
        name = f"ckpt-{global_step}"
        state = dict(self._state, epoch=epoch, step=step, global_step=global_step,
                     weights=f"{name}.weights.h5", train_seconds=self.train_seconds,
                     epoch_metrics=self._metric_sums() if step else None)
        with atomic_path(os.path.join(self.backup_dir, state["weights"]),
                         ".weights.h5") as temporary:
            self.model.save_weights(temporary)
        self._state = json_safe(state)  # NaN validation logs become null
        write_json(os.path.join(self.backup_dir, f"{name}.json"), self._state)
        write_json(os.path.join(self.backup_dir, "latest.json"), self._state)
        self._remove_old(global_step)

    def _metric_sums(self) -> list:
        """The variables of every metric (totals and counts), for the epoch's
        running means to go on where they were."""
        return [keras.ops.convert_to_numpy(v).tolist()
                for metric in self.model.metrics for v in metric.variables]

    def _put_back_metric_sums(self, sums) -> None:
        variables = [v for metric in self.model.metrics for v in metric.variables]
        if sums is None or len(sums) != len(variables):
            logging.warning("the backup has no metric sums for this model: the logs of "
                            "epoch %d cover only the steps after the restart", self._epoch + 1)
            return
        for variable, value in zip(variables, sums):
            variable.assign(np.asarray(value, dtype=variable.dtype))

    def _remove_old(self, newest: int) -> None:
        """Keeps the ``keep`` newest backups up to ``newest``, the one just written;
        later ones are from a run stopped after them and resumed from an earlier
        backup (or could not be read): stale."""
        backups = _backups(self.backup_dir)
        kept = sorted(step for step in backups if step <= newest)[-self.keep:]
        for step in set(backups) - set(kept):
            for kind in backups[step]:
                tf.io.gfile.remove(os.path.join(self.backup_dir, f"ckpt-{step}.{kind}"))


def _backups(directory: str) -> dict:
    """``{global step: {"weights.h5", "json"}}``: the backup files in ``directory``."""
    found = {}
    if not tf.io.gfile.isdir(directory):
        return found
    for name in tf.io.gfile.listdir(directory):
        match = _BACKUP_FILE.match(name)
        if match:
            found.setdefault(int(match.group(1)), set()).add(match.group(2))
    return found


def _read_state(path: str):
    """The state in ``path`` (None if there is no file), or the error reading it."""
    try:
        return read_json(path)
    except (OSError, ValueError) as error:
        return error


def _load_weights(model: keras.Model, path: str) -> None:
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    with local_copy(path) as local:  # h5py reads local files only
        model.load_weights(local)


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"
