"""TensorBoard's HParams tab: each run's trial, each study's table.

A training run is one trial (``Trial``): its session, in ``tensorboard/trial/`` above
the run's ``train/``, ``validation/`` and ``test/`` folders (TensorBoard reads a
trial's metrics in the folders below its session's; a session at the logdir's root,
run ".", finds none), holds one hparam per flag of ``sfocus-train``, named as the
flag, two summary columns (``loss_weights``, ``map_reading``), the run directory as
the trial's name, and at the end its status and end time. A finished run writes its
own table (the experiment config: columns and metrics) beside it, so that
``--logdir runs/demo`` and ``--logdir runs/demo/tensorboard`` show the same table.
A study (``sfocus-reproduce``, ``sfocus-tune``) writes one table into its root
folder instead (``write_study``): the hparams its runs differ in and the metrics to
compare; its runs write none (TensorBoard reads one table per logdir, whichever it
finds first).

TensorBoard 2.21 has no per-column default visibility: the table shows the first
five hparams (those marked ``differs`` first, then by name) and the first five
metrics (in the table's order). A run marks ``SHOWN`` and lists ``MAIN_RESULTS``
first; the other columns are one tick away in the left pane. Every number is shown
with five significant digits (``8.0000``), so integer flags are written as text.
"""

from __future__ import annotations

import os
import time

import tensorflow as tf
from tensorboard.plugins.hparams import api as hp
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from tensorboard.compat.proto import summary_pb2

from sfocus_tf.common.config_flags import flag_values
from sfocus_tf.modeling import terms
from sfocus_tf.training import tensorboard_logs, tensorboard_tags

_EVENTS_PREFIX = "events.out.tfevents."
SUCCESS, FAILURE = api_pb2.STATUS_SUCCESS, api_pb2.STATUS_FAILURE

# The columns a run's table shows at first: what was trained, on what, and how.
SHOWN = ("dataset", "loss_weights", "lr", "map_reading", "model")  # lr: --lr, the rate
# The fields that say how training reads a map (``map_reading``), in its order; the
# temperature only for softmax maps. Values first, so a narrow column still shows them.
READING = ("map_activation", "gradcam_weights", "class_score", "normalize", "map_temperature")
SUMMARY_HELP = {
    "loss_weights": "weights of the attention terms: w_as_last/w_as_in/w_ac (/w_bw when "
                    "on); 0/0/0: the baseline",
    "map_reading": "how training reads a map: " + "/".join(READING)
                   + " (the temperature of softmax maps only)",
}
# ``metrics.json`` figures the table shows at first, with their column titles.
MAIN_RESULTS = {"test_accuracy": "test accuracy", "attention_overlap": "test overlap",
                "attention_consistency": "test consistency",
                "validation_accuracy": "val accuracy",
                "validation_attention_overlap": "val overlap"}


def config_hparams(config) -> dict:
    """``{flag name: value}`` of a (resolved) config, nested fields flattened; fields
    at None are left out, lists, integers and non-string choices (``jit_compile``)
    are written as their flag text and float fields as floats, so each hparam has
    one type across runs."""
    return {item.name: value for item, value in _hparam_values(config)}


def summary_hparams(config) -> dict:
    """The two summary columns: the attention weights and the map reading, each as
    one short text."""
    sfocus = config.sfocus
    weights = [term.weight for term in terms.TERMS if term.weight is not None
               and (term.weight != "w_bw" or sfocus.w_bw)]
    reading = [field for field in READING
               if field != "map_temperature" or sfocus.map_activation == "softmax"]
    return {"loss_weights": "/".join(f"{getattr(sfocus, name):g}" for name in weights)
            + " (" + "/".join(name[2:] for name in weights) + ")",
            "map_reading": "/".join(str(getattr(sfocus, field)) for field in reading)}


def _hparam_values(config):
    """(flag field, hparam value) of each field of ``config`` not at None."""
    for item, value in flag_values(config):
        if isinstance(value, tuple) or (item.choices is not None and not isinstance(value, str)):
            value = item.spelling(value)
        elif item.kind is int:
            value = str(value)  # "8", not TensorBoard's "8.0000"
        elif item.kind is float:
            value = float(value)  # an int given for a float field: one type per hparam
        yield item, value


class Trial:
    """A run's HParams session in ``logdir`` (``tensorboard/trial/``): started on
    entry, named ``name``; ended on exit with its status, failure when an exception
    leaves the block (an interrupt leaves it open: the run may resume). Set
    ``results`` (``metrics.json``) before a normal exit to write the run's table."""

    def __init__(self, logdir: str, config, name: str):
        self.logdir, self.config, self.name, self.results = logdir, config, name, None

    def __enter__(self):
        # a restart replaces the session (and the end a failed try wrote): TensorBoard
        # keeps the first summary of a tag it reads
        _replace(self.logdir, hp.hparams_pb(
            {**config_hparams(self.config), **summary_hparams(self.config)},
            trial_id=self.name))
        return self

    def __exit__(self, kind, error, traceback):
        if kind is not None and not issubclass(kind, Exception):
            return
        summaries = [_end_pb(FAILURE if kind else SUCCESS)]
        if kind is None and self.results is not None:
            summaries.insert(0, _experiment_pb(run_columns(self.config),
                                               run_metrics(self.results)))
        _write(self.logdir, *summaries)


def run_columns(config) -> list:
    """The ``HParamInfo`` of each hparam of a run, ``SHOWN`` marked, without domains
    (a table read with other runs' sessions would filter theirs out)."""
    helps = {item.name: item.field.metadata["help"] for item, _ in _hparam_values(config)}
    helps.update(SUMMARY_HELP)
    values = {**config_hparams(config), **summary_hparams(config)}
    return [api_pb2.HParamInfo(name=name, description=helps[name], type=_data_type(value),
                               differs=name in SHOWN)
            for name, value in values.items()]


def run_metrics(metrics: dict) -> list:
    """``final_metric`` of each charted number of ``metrics.json``, ``MAIN_RESULTS``
    first."""
    keys = list(tensorboard_logs.final_metrics(metrics))
    first = [key for key in MAIN_RESULTS if key in keys]
    return [final_metric(key, MAIN_RESULTS.get(key, key))
            for key in first + [key for key in keys if key not in first]]


def write_study(logdir: str, hparams: list, metrics: list) -> None:
    """The study's experiment config (``hp.HParam``s, every one of them a column it
    shows, and ``hp.Metric``s) into ``logdir``, the folder its runs are below. It
    replaces the one an earlier call wrote there: a study that resumes writes it
    again."""
    _replace(logdir, _experiment_pb([_info(hparam) for hparam in hparams], metrics))


def differing_hparams(configs) -> list:
    """``hp.HParam``s of the flags whose values differ between ``configs``, with their
    values as the domain and the flag's help as the description (the columns worth
    showing for a study)."""
    values, helps = {}, {}
    for config in configs:
        for item, value in _hparam_values(config):
            values.setdefault(item.name, []).append(value)
            helps[item.name] = item.field.metadata["help"]
    return [hp.HParam(name, hp.Discrete(sorted(set(seen), key=_domain_order)),
                      description=helps[name])
            for name, seen in values.items()
            if len(seen) != len(configs) or len(set(seen)) > 1]


def final_metric(key: str, display_name: str | None = None) -> hp.Metric:
    """A figure of ``metrics.json`` where ``tensorboard_logs.write_final_metrics``
    (or, for the validation loss and accuracy, the last epoch) puts it."""
    run, tag = tensorboard_tags.final_place(key)
    return hp.Metric(tag, group=run, display_name=display_name,
                     description=tensorboard_logs.describe(key))


def epoch_metric(log_name: str) -> hp.Metric:
    """The last epoch's value of a ``fit`` log (``val_accuracy``: the validation
    accuracy), as ``tensorboard_logs.TensorBoard`` writes it."""
    run, name = tensorboard_tags.split(log_name)
    return hp.Metric(tensorboard_tags.tag(name), group=run, display_name=log_name,
                     description=tensorboard_logs.describe(name))


def _domain_order(value):
    """Numbers (integers written as text too) in numeric order, then the rest."""
    try:
        return 0, float(value), ""
    except ValueError:
        return 1, 0.0, str(value)


def _data_type(value) -> int:
    if isinstance(value, bool):
        return api_pb2.DATA_TYPE_BOOL
    return api_pb2.DATA_TYPE_STRING if isinstance(value, str) else api_pb2.DATA_TYPE_FLOAT64


def _info(hparam: hp.HParam) -> api_pb2.HParamInfo:
    """A study's column: marked ``differs`` (it does), so TensorBoard shows it first."""
    info = api_pb2.HParamInfo(name=hparam.name, description=hparam.description or "",
                              display_name=hparam.display_name or "", differs=True)
    if hparam.domain is not None:
        hparam.domain.update_hparam_info(info)
    return info


def _experiment_pb(infos: list, metrics: list) -> summary_pb2.Summary:
    experiment = api_pb2.Experiment(hparam_infos=infos, time_created_secs=time.time(),
                                    metric_infos=[metric.as_proto() for metric in metrics])
    return _summary_pb(metadata.EXPERIMENT_TAG,
                       plugin_data_pb2.HParamsPluginData(experiment=experiment))


def _end_pb(status: int) -> summary_pb2.Summary:
    end = plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=time.time())
    return _summary_pb(metadata.SESSION_END_INFO_TAG,
                       plugin_data_pb2.HParamsPluginData(session_end_info=end))


def _summary_pb(tag: str, plugin_data) -> summary_pb2.Summary:
    summary = summary_pb2.Summary()
    summary.value.add(tag=tag, metadata=metadata.create_summary_metadata(plugin_data),
                      tensor=metadata.NULL_TENSOR)
    return summary


def _write(logdir: str, *summaries) -> None:
    writer = tf.summary.create_file_writer(logdir)
    with writer.as_default():
        for summary in summaries:
            tf.summary.experimental.write_raw_pb(summary.SerializeToString(), step=0)
    writer.close()


def _replace(logdir: str, *summaries) -> None:
    """``summaries`` into ``logdir``, in place of the events files there before."""
    previous = [name for name in _listdir(logdir) if name.startswith(_EVENTS_PREFIX)]
    _write(logdir, *summaries)
    for name in previous:
        tf.io.gfile.remove(os.path.join(logdir, name))


def _listdir(logdir: str) -> list:
    return tf.io.gfile.listdir(logdir) if tf.io.gfile.isdir(logdir) else []
