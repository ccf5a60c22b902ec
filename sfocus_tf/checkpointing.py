"""A backup callback that lets a killed run resume.

Every file is written atomically (``sfocus_tf.files``), so a reader never sees
half a file, and a run killed while writing leaves the previous version intact.
"""

from __future__ import annotations

import os

import keras

# The file helpers moved to sfocus_tf.files; imported here under their old names.
from sfocus_tf.files import (atomic_path, listdir, local_copy, read_json, remove,  # noqa: F401
                             save_model, write_json)


class BackupAndResume(keras.callbacks.Callback):
    """Backs up weights and optimizer state every ``save_every_steps`` steps and at
    every epoch end; on ``fit`` start, restores the newest backup.

    Files in ``backup_dir``: ``ckpt-<global step>.weights.h5`` and ``latest.json``
    (which one is newest, the epoch and step it was taken at, the per-epoch logs so
    far). ``latest.json`` is replaced only after its weights file is complete, so a
    kill at any moment leaves a consistent backup. An epoch interrupted midway is
    redone from its start with the weights of the last backup; finished epochs are
    never redone. ``fit`` must be given ``initial_epoch=backup.initial_epoch``.

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
        self._state = read_json(os.path.join(self.restore_dir, "latest.json"),
                                {"epoch": 0, "step": 0, "global_step": 0, "weights": None,
                                 "history": {}})

    @property
    def _latest_path(self) -> str:
        return os.path.join(self.backup_dir, "latest.json")

    @property
    def initial_epoch(self) -> int:
        """Epochs finished before this run started."""
        return self._state["epoch"]

    @property
    def history(self) -> dict:
        """``{epoch: logs}`` of every finished epoch, across restarts."""
        return {int(k): v for k, v in self._state["history"].items()}

    def restore(self, model: keras.Model) -> bool:
        """Loads the newest backup into ``model`` (weights and optimizer state)."""
        weights = self._state["weights"]
        if weights is None:
            return False
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        with local_copy(os.path.join(self.restore_dir, weights)) as path:  # h5py: local
            model.load_weights(path)
        return True

    def on_train_begin(self, logs=None):
        self.restore(self.model)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._steps_in_epoch = 0

    def on_train_batch_end(self, batch, logs=None):
        self._steps_in_epoch = batch + 1
        if self.save_every_steps and self._steps_in_epoch % self.save_every_steps == 0:
            self._save(self._epoch, self._steps_in_epoch)

    def on_epoch_end(self, epoch, logs=None):
        self._state["history"][str(epoch)] = {k: float(v) for k, v in (logs or {}).items()}
        self._save(epoch + 1, 0)

    def _save(self, epoch: int, step: int) -> None:
        global_step = int(self.model.optimizer.iterations.numpy())
        name = f"ckpt-{global_step}.weights.h5"
        with atomic_path(os.path.join(self.backup_dir, name), ".weights.h5") as temporary:
            self.model.save_weights(temporary)
        self._state.update(epoch=epoch, step=step, global_step=global_step, weights=name)
        write_json(self._latest_path, self._state)
        self._remove_old()

    def _remove_old(self) -> None:
        backups = sorted((f for f in listdir(self.backup_dir)
                          if f.startswith("ckpt-") and f.endswith(".weights.h5")),
                         key=lambda f: int(f[len("ckpt-"):-len(".weights.h5")]))
        for old in backups[:-self.keep]:  # the one just written is the newest: kept
            remove(os.path.join(self.backup_dir, old))
