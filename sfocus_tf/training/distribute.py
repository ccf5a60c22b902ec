"""tf.distribute for SFOCUS training: strategy choice, chief-only writes, and the one
patch Keras 3 needs for MultiWorkerMirroredStrategy.

One machine, several GPUs: ``MirroredStrategy``. Several machines: set ``TF_CONFIG``
on each (``{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type":
"worker", "index": i}}``) and use ``MultiWorkerMirroredStrategy``. The global batch is
split over all replicas; every loss term is a mean over the global batch (each
replica divides its own mean by the number of replicas, the all-reduce sums).
"""

from __future__ import annotations

import json
import os
import tempfile

import keras
import tensorflow as tf

from keras_models import keras_compat
from sfocus_tf.configs.train_config import STRATEGIES



def make_strategy(name: str) -> tf.distribute.Strategy:
    """``auto``: MirroredStrategy when several GPUs are visible, else the default.

    Create it before any other TensorFlow work: MultiWorkerMirroredStrategy
    configures the runtime's collective ops, which must happen first.
    """
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; valid: {', '.join(STRATEGIES)}")
    if name == "multi_worker":
        tf_config()  # a missing or malformed TF_CONFIG: one line, before TF reads it
        keras_compat.patch_trainer_for_multi_worker()  # keras-team/keras#20585
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    return tf.distribute.get_strategy()


def tf_config() -> tuple[dict, str, int]:
    """``(cluster, task type, task index)`` from the TF_CONFIG environment variable,
    checked: a ValueError naming TF_CONFIG says what is wrong."""
    if "TF_CONFIG" not in os.environ:
        raise ValueError("strategy=multi_worker needs the TF_CONFIG environment "
                         "variable (the cluster and this worker's task)")
    try:
        spec = json.loads(os.environ["TF_CONFIG"])
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON: {error}") from None
    cluster = spec.get("cluster") if isinstance(spec, dict) else None
    task_spec = spec.get("task") if isinstance(spec, dict) else None
    if not isinstance(cluster, dict) or not cluster or not all(
            isinstance(hosts, list) for hosts in cluster.values()):
        raise ValueError('TF_CONFIG needs "cluster": {"worker": ["host:port", ...], ...}')
    if not isinstance(task_spec, dict) or "type" not in task_spec or "index" not in task_spec:
        raise ValueError('TF_CONFIG needs "task": {"type": ..., "index": ...}')
    task_type, index = task_spec["type"], task_spec["index"]
    if task_type not in cluster:
        raise ValueError(f"TF_CONFIG task type {task_type!r} is not in its cluster "
                         f"({', '.join(cluster)})")
    if not str(index).isdigit() or not int(index) < len(cluster[task_type]):  # TF takes "1"
        raise ValueError(f"TF_CONFIG task index {index!r} is out of range: the cluster has "
                         f"{len(cluster[task_type])} {task_type} task(s)")
    return cluster, task_type, int(index)


def uses_tf_config(strategy: tf.distribute.Strategy) -> bool:
    """Only MultiWorkerMirroredStrategy reads TF_CONFIG: any other strategy is one
    machine, whatever a leftover TF_CONFIG in the environment says."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """The chief writes checkpoints, logs and exports: the ``chief`` task if the
    cluster has one, else worker 0; the only process of a one-machine strategy."""
    if not uses_tf_config(strategy):
        return True
    cluster, task_type, index = tf_config()
    if "chief" in cluster:
        return task_type == "chief"
    return task_type == "worker" and index == 0


def output_dir(workdir: str, strategy: tf.distribute.Strategy) -> str:
    """Where this process writes: ``workdir`` on the chief, a fresh temporary
    directory on other workers (they run the same code, so they write too, but
    nothing of theirs is kept)."""
    if is_chief(strategy):
        return workdir
    _, task_type, index = tf_config()
    return tempfile.mkdtemp(prefix=f"sfocus-{task_type}{index}-")
