"""Step time of SFOCUS against a plain Keras step on the same backbone and batch.

    python bench/step_time.py [--model=resnet20] [--batch_size=128] [--steps=20]

For each image shape and jit setting it times, interleaved in rounds so that
machine noise hits every variant alike: a plain Keras model (backbone + GAP +
dense, ``compile(loss=...)``) and SFocusModel with second_order on, off, and
all attention weights at 0 (the baseline). Reported: median seconds per step
and the ratio to the plain step measured in the same run.
"""

from __future__ import annotations

import json
import os
import platform

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

import keras_models  # noqa: E402
from common import VARIANTS, parse_shape, plain_model, sfocus_model, time_steps  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "resnet20", "Backbone name (keras_models).")
flags.DEFINE_integer("batch_size", 128, "Batch size.")
flags.DEFINE_integer("steps", 20, "Timed steps per variant (split over the rounds).")
flags.DEFINE_integer("rounds", 4, "Interleaved rounds.")
flags.DEFINE_list("shapes", ["32x32x3", "28x28x1"], "Image shapes HxWxC.")
flags.DEFINE_list("jit", ["off", "on"], "jit_compile settings to time.")
flags.DEFINE_string("output", "", "Write the results as JSON here.")


def bench_shape(shape, jit):
    num_classes = 10
    rng = np.random.default_rng(0)
    images = rng.normal(size=(FLAGS.batch_size,) + shape).astype("float32")
    labels = rng.integers(0, num_classes, FLAGS.batch_size).astype("int32")
    dataset = tf.data.Dataset.from_tensors((images, labels)).repeat()
    models = {"plain_keras": plain_model(
        keras_models.get(FLAGS.model, shape, num_classes), num_classes, jit)}
    for name, config in VARIANTS.items():
        models[name] = sfocus_model(keras_models.get(FLAGS.model, shape, num_classes),
                                    num_classes, config, jit)
    times = {name: [] for name in models}
    for model in models.values():
        time_steps(model, dataset, 2)  # trace and compile
    per_round = max(1, FLAGS.steps // FLAGS.rounds)
    for _ in range(FLAGS.rounds):
        for name, model in models.items():
            times[name] += time_steps(model, dataset, per_round)
    medians = {name: float(np.median(t)) for name, t in times.items()}
    return {name: {"median_s": m, "ratio_to_plain": m / medians["plain_keras"]}
            for name, m in medians.items()}


def main(argv):
    del argv
    results = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                          f"GPUs: {len(tf.config.list_physical_devices('GPU'))}",
               "tensorflow": tf.__version__, "keras": keras.__version__,
               "model": FLAGS.model, "batch_size": FLAGS.batch_size, "runs": []}
    print("| shape | jit | variant | median step (s) | / plain |\n|---|---|---|---|---|")
    for shape_text in FLAGS.shapes:
        shape = parse_shape(shape_text)
        for jit_text in FLAGS.jit:
            jit = jit_text == "on"
            result = bench_shape(shape, jit)
            results["runs"].append({"shape": shape_text, "jit": jit, "variants": result})
            for name, row in result.items():
                print(f"| {shape_text} | {jit_text} | {name} | {row['median_s']:.4f} | "
                      f"{row['ratio_to_plain']:.2f} |", flush=True)
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    app.run(main)
