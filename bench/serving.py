"""Latency of an exported SavedModel, as a model server would run it.

    python bench/serving.py [--model=resnet20] [--dataset=fashion_mnist] [--calls=200]

Exports an SFocusModel (weights do not change latency) with ``sfocus_tf.serving.export``,
loads it with ``tf.saved_model.load`` and calls each signature with uint8 batches
of 1 and 32 images; reports p50 and p99 latency per call, and p50 per image.
"""

from __future__ import annotations

import json
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from sfocus_tf import data  # noqa: E402
from sfocus_tf.serving.export import export_saved_model  # noqa: E402
from sfocus_tf.configs.train_config import TrainConfig  # noqa: E402
from sfocus_tf.training.build import build_model  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", "fashion_mnist", "Dataset preset (input size, normalisation).")
flags.DEFINE_string("model", "resnet20", "Backbone.")
flags.DEFINE_integer("calls", 200, "Timed calls per signature and batch size.")
flags.DEFINE_list("batch_sizes", ["1", "32"], "Request batch sizes.")
flags.DEFINE_string("output", "", "Write the results as JSON here.")


def latencies(signature, images, calls):
    signature(images=images)  # warm up
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        signature(images=images)
        times.append(time.perf_counter() - start)
    return np.asarray(times)


def main(argv):
    del argv
    # Untrained, built as for training; weight decay would only add training losses.
    config = TrainConfig(dataset=FLAGS.dataset, model=FLAGS.model, weight_decay=0.0).resolve()
    preset = data.get_preset(config.dataset, image_size=config.image_size)
    model = build_model(config, preset)
    with tempfile.TemporaryDirectory() as root:
        names = [f"class {i}" for i in range(model.num_classes)]  # names do not change latency
        largest = max(map(int, FLAGS.batch_sizes))
        loaded = tf.saved_model.load(export_saved_model(model, preset, root, names,
                                                        max_batch_size=largest))
        rng = np.random.default_rng(0)
        rows = []
        for name in ("serving_default", "attention"):
            for batch in map(int, FLAGS.batch_sizes):
                images = tf.constant(rng.integers(0, 256, (batch,) + preset.image_size,
                                                  dtype=np.uint8))
                times = latencies(loaded.signatures[name], images, FLAGS.calls) * 1000
                rows.append({"signature": name, "batch": batch,
                             "p50_ms": float(np.percentile(times, 50)),
                             "p99_ms": float(np.percentile(times, 99)),
                             "p50_ms_per_image": float(np.percentile(times, 50)) / batch})
    print("| signature | batch | p50 ms | p99 ms | p50 ms / image |\n|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['signature']} | {row['batch']} | {row['p50_ms']:.2f} | "
              f"{row['p99_ms']:.2f} | {row['p50_ms_per_image']:.2f} |")
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            json.dump({"model": FLAGS.model, "dataset": FLAGS.dataset, "rows": rows}, f,
                      indent=2)


if __name__ == "__main__":
    app.run(main)
