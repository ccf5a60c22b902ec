"""TensorBoard's HParams tab: each run's configuration, each study's table.

A training run writes its resolved config (one hparam per flag of ``sfocus-train``,
named as the flag) into its ``tensorboard/`` folder (``write_run``); its results are
the final test metrics ``tensorboard_logs.write_final_metrics`` writes below it. A
study (``sfocus-reproduce``, ``sfocus-tune``) writes one experiment config into its
root folder (``write_study``): the hparams its runs differ in and the metrics to
compare, so ``tensorboard --logdir=<study>`` shows its runs as one table. Without a
study config (separate runs under one folder) TensorBoard builds the table from the
runs' own hparams.
"""

from __future__ import annotations

import os

import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

from sfocus_tf.training import tensorboard_logs
from sfocus_tf.common.config_flags import flag_values

_EVENTS_PREFIX = "events.out.tfevents."


def config_hparams(config) -> dict:
    """``{flag name: value}`` of a (resolved) config, nested fields flattened; fields
    at None are left out, lists and non-string choices (``jit_compile``) are written
    as their flag text and float fields as floats, so each hparam has one type
    across runs."""
    return {item.name: value for item, value in _hparam_values(config)}


def _hparam_values(config):
    """(flag field, hparam value) of each field of ``config`` not at None."""
    for item, value in flag_values(config):
        if isinstance(value, tuple) or (item.choices is not None and not isinstance(value, str)):
            value = item.spelling(value)
        elif item.kind is float:
            value = float(value)  # an int given for a float field: one type per hparam
        yield item, value


def write_run(logdir: str, config) -> None:
    """The run's hparams (its session), into ``logdir``, the run's TensorBoard folder."""
    _write(logdir, lambda: hp.hparams(config_hparams(config)))


def write_study(logdir: str, hparams: list, metrics: list) -> None:
    """The study's experiment config (``hp.HParam``s, ``hp.Metric``s) into ``logdir``,
    the folder its runs are below. It replaces the one an earlier call wrote there:
    TensorBoard reads one experiment config per folder tree, and a study that resumes
    writes it again."""
    previous = [name for name in _listdir(logdir) if name.startswith(_EVENTS_PREFIX)]
    _write(logdir, lambda: hp.hparams_config(hparams=hparams, metrics=metrics))
    for name in previous:
        tf.io.gfile.remove(os.path.join(logdir, name))


def differing_hparams(configs) -> list:
    """``hp.HParam``s of the flags whose values differ between ``configs``, with their
    values as the domain and the flag's help as the description (the columns worth
    showing for a study)."""
    values, helps = {}, {}
    for config in configs:
        for item, value in _hparam_values(config):
            values.setdefault(item.name, []).append(value)
            helps[item.name] = item.field.metadata["help"]
    return [hp.HParam(name, hp.Discrete(sorted(set(seen), key=str)), description=helps[name])
            for name, seen in values.items()
            if len(seen) != len(configs) or len(set(seen)) > 1]


def test_metric(name: str, display_name: str | None = None) -> hp.Metric:
    """A final test metric of a training run (``tensorboard_logs.write_final_metrics``)."""
    return hp.Metric(name, group=tensorboard_logs.TEST, display_name=display_name,
                     description=tensorboard_logs.describe(name))


def epoch_metric(log_name: str) -> hp.Metric:
    """The last epoch's value of a ``fit`` log (``val_accuracy``: the validation
    accuracy), as ``tensorboard_logs.TensorBoard`` writes it."""
    validation = log_name.startswith("val_")
    name = log_name[4:] if validation else log_name
    return hp.Metric(f"epoch_{name}",
                     group=tensorboard_logs.VALIDATION if validation else tensorboard_logs.TRAIN,
                     display_name=log_name, description=tensorboard_logs.describe(name))


def _write(logdir: str, summary) -> None:
    writer = tf.summary.create_file_writer(logdir)
    with writer.as_default():
        summary()
    writer.close()


def _listdir(logdir: str) -> list:
    return tf.io.gfile.listdir(logdir) if tf.io.gfile.isdir(logdir) else []
