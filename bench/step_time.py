"""Step time of SFOCUS against a plain Keras step on the same backbone and batch.

    python bench/step_time.py [--model=resnet20] [--batch_size=128] [--steps=20]

For each image shape and jit setting it times, interleaved in rounds so that
machine noise hits every variant alike: a plain Keras model (backbone + GAP +
dense, ``compile(loss=...)``) and SFocusModel with second_order on, off, and
all attention weights at 0 (the baseline). Reported: median seconds per step
and the ratio to the plain step measured in the same run.

The ``plusplus`` part times, for each class count of ``--plusplus_classes``, the
plain step, the default SFOCUS step and the ++ step (per-class last blocks of
``--class_block_width``, default SFOCUS losses plus ``w_bw=1``), with each model's
parameter count: the ++ last stage grows with the number of classes.
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
from common import (VARIANTS, interleaved_times, one_batch, parse_shape,  # noqa: E402
                    plain_model, sfocus_model, time_steps)
from sfocus_tf import SFocusConfig  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "resnet20", "Backbone name (keras_models).")
flags.DEFINE_integer("batch_size", 128, "Batch size.")
flags.DEFINE_integer("steps", 20, "Timed steps per variant (split over the rounds).")
flags.DEFINE_integer("rounds", 4, "Interleaved rounds.")
flags.DEFINE_list("shapes", ["32x32x3", "28x28x1"], "Image shapes HxWxC.")
flags.DEFINE_list("jit", ["off", "on"], "jit_compile settings to time.")
flags.DEFINE_string("output", "", "Write the results as JSON here.")
flags.DEFINE_list("parts", ["variants", "plusplus"], "What to time: the SFOCUS variants "
                  "(10 classes), and/or plain, SFOCUS and ++ per class count.")
flags.DEFINE_list("plusplus_classes", ["10", "100"], "Class counts of the plusplus part.")
flags.DEFINE_integer("class_block_width", 13, "Width of the ++ per-class last blocks.")


def bench_shape(shape, jit):
    num_classes = 10
    models = {"plain_keras": plain_model(
        keras_models.get(FLAGS.model, shape, num_classes), num_classes, jit)}
    for name, config in VARIANTS.items():
        models[name] = sfocus_model(keras_models.get(FLAGS.model, shape, num_classes),
                                    num_classes, config, jit)
    return time_models(models, one_batch(shape, num_classes, FLAGS.batch_size))


def bench_plusplus(shape, jit, num_classes):
    """Plain, SFOCUS and ++ steps for ``num_classes`` classes, with parameter counts."""
    def backbone(**kwargs):
        return keras_models.get(FLAGS.model, shape, num_classes, **kwargs)

    models = {
        "plain_keras": plain_model(backbone(), num_classes, jit),
        "sfocus": sfocus_model(backbone(), num_classes, SFocusConfig(), jit),
        "plusplus": sfocus_model(backbone(class_block_width=FLAGS.class_block_width),
                                 num_classes, SFocusConfig(w_bw=1.0), jit),
    }
    result = time_models(models, one_batch(shape, num_classes, FLAGS.batch_size))
    for name, model in models.items():
        result[name]["params"] = int(model.count_params())
    return result


def time_models(models, dataset):
    """Median step time of each model and its ratio to ``plain_keras``."""
    for model in models.values():
        time_steps(model, dataset, 2)  # trace and compile
    times = interleaved_times(models, dataset, FLAGS.steps, FLAGS.rounds)
    medians = {name: float(np.median(t)) for name, t in times.items()}
    return {name: {"median_s": m, "ratio_to_plain": m / medians["plain_keras"]}
            for name, m in medians.items()}


def settings():
    return [(shape, jit) for shape in FLAGS.shapes for jit in FLAGS.jit]


def main(argv):
    del argv
    results = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                          f"GPUs: {len(tf.config.list_physical_devices('GPU'))}",
               "tensorflow": tf.__version__, "keras": keras.__version__,
               "model": FLAGS.model, "batch_size": FLAGS.batch_size, "runs": []}
    if "variants" in FLAGS.parts:
        print("| shape | jit | variant | median step (s) | / plain |\n|---|---|---|---|---|")
        for shape_text, jit_text in settings():
            result = bench_shape(parse_shape(shape_text), jit_text == "on")
            results["runs"].append({"shape": shape_text, "jit": jit_text == "on",
                                    "variants": result})
            for name, row in result.items():
                print(f"| {shape_text} | {jit_text} | {name} | {row['median_s']:.4f} | "
                      f"{row['ratio_to_plain']:.2f} |", flush=True)
    if "plusplus" in FLAGS.parts:
        print(f"\n++ with class_block_width={FLAGS.class_block_width}:\n"
              "| shape | jit | classes | variant | parameters | median step (s) | / plain |"
              "\n|---|---|---|---|---|---|---|")
        for shape_text, jit_text in settings():
            for num_classes in map(int, FLAGS.plusplus_classes):
                result = bench_plusplus(parse_shape(shape_text), jit_text == "on", num_classes)
                results["runs"].append({"shape": shape_text, "jit": jit_text == "on",
                                        "classes": num_classes,
                                        "class_block_width": FLAGS.class_block_width,
                                        "plusplus": result})
                for name, row in result.items():
                    print(f"| {shape_text} | {jit_text} | {num_classes} | {name} | "
                          f"{row['params']:,} | {row['median_s']:.4f} | "
                          f"{row['ratio_to_plain']:.2f} |", flush=True)
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    app.run(main)
