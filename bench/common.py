"""Pieces the scripts in bench/ share: the compared models and the step timer.

bench/ is not a package: each script runs as ``python bench/<name>.py``, which puts
bench/ on ``sys.path``, so ``import common`` finds this file. It defines no flags.
"""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf

from sfocus_tf import SFocusConfig, SFocusModel
from sfocus_tf.serving.export import export_saved_model

# The SFOCUS variants compared with a plain Keras step.
VARIANTS = {
    "sfocus_second_order": SFocusConfig(second_order=True),
    "sfocus_first_order": SFocusConfig(second_order=False),
    "sfocus_baseline": SFocusConfig().baseline(),
}


def parse_shape(text):
    """``"32x32x3"`` -> ``(32, 32, 3)``."""
    return tuple(int(v) for v in text.split("x"))


def sgd():
    return keras.optimizers.SGD(0.01, momentum=0.9)


def plain_model(backbone, num_classes, jit="auto", optimizer=None):
    """A functional Keras model with the backbone and SFOCUS' head (GAP + dense)."""
    pool = keras.layers.GlobalAveragePooling2D()(backbone.output["last"])
    model = keras.Model(backbone.input, keras.layers.Dense(num_classes)(pool))
    model.compile(optimizer=optimizer or sgd(),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=jit)
    return model


def sfocus_model(backbone, num_classes, config, jit="auto", optimizer=None):
    model = SFocusModel(backbone, num_classes, config)
    model.compile(optimizer=optimizer or sgd(), jit_compile=jit)
    return model


class StepTimer(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def one_batch(shape, num_classes, batch_size):
    """One fixed random batch, repeated: the step, not the input pipeline, is timed."""
    rng = np.random.default_rng(0)
    images = rng.normal(size=(batch_size,) + shape).astype("float32")
    labels = rng.integers(0, num_classes, batch_size).astype("int32")
    return tf.data.Dataset.from_tensors((images, labels)).repeat()


def time_steps(model, dataset, steps):
    """Seconds of each of ``steps`` training steps of ``model.fit`` on ``dataset``."""
    timer = StepTimer()
    timer.times = []
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[timer],
              shuffle=False)  # a dataset; Keras would only warn that it cannot shuffle
    return timer.times


def interleaved_times(models, dataset, steps, rounds, measure=time_steps):
    """Step times of each of ``models`` (traced and compiled already): ``steps`` each,
    split over ``rounds`` in which every model takes its turn, so that machine noise
    hits them alike. ``measure(model, dataset, n)`` returns the seconds of n steps."""
    times = {name: [] for name in models}
    per_round = max(1, steps // rounds)
    for _ in range(rounds):
        for name, model in models.items():
            times[name] += measure(model, dataset, per_round)
    return times


def exported_signatures(model, preset, root, max_batch_size):
    """``model`` exported with ``sfocus_tf.serving.export`` under ``root`` and loaded
    back as a model server would: its signatures by name."""
    names = [f"class {i}" for i in range(model.num_classes)]  # names do not change latency
    path = export_saved_model(model, preset, root, names, max_batch_size=max_batch_size)
    return tf.saved_model.load(path).signatures


def latency_rows(signatures, names, batch_sizes, image_size, calls):
    """p50 / p99 milliseconds per call of each signature of ``names`` on uint8 batches of
    each size (after a warm-up call), and p50 per image."""
    rng = np.random.default_rng(0)
    rows = []
    for name in names:
        for batch in batch_sizes:
            images = tf.constant(rng.integers(0, 256, (batch,) + tuple(image_size),
                                              dtype=np.uint8))
            times = latencies(signatures[name], images, calls) * 1000
            rows.append({"signature": name, "batch": batch,
                         "p50_ms": float(np.percentile(times, 50)),
                         "p99_ms": float(np.percentile(times, 99)),
                         "p50_ms_per_image": float(np.percentile(times, 50)) / batch})
    return rows


def latencies(signature, images, calls):
    signature(images=images)  # warm up
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        signature(images=images)
        times.append(time.perf_counter() - start)
    return np.asarray(times)
