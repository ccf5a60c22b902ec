"""Peak memory of training: SFOCUS against a plain Keras step, same model and batch.

    python bench/memory.py [--model=resnet20] [--batch_size=128] [--shape=32x32x3]

Each variant trains a few steps in a fresh process (peak resident memory,
``ru_maxrss``, only grows, so one process per variant); an idle process that only
builds the model gives the baseline to subtract.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "resnet20", "Backbone.")
flags.DEFINE_integer("batch_size", 128, "Batch size.")
flags.DEFINE_string("shape", "32x32x3", "Image shape HxWxC.")
flags.DEFINE_integer("steps", 5, "Training steps per variant.")
flags.DEFINE_string("variant", "", "Internal: run one variant and print its peak.")
flags.DEFINE_string("output", "", "Write the results as JSON here.")

VARIANTS = ("build_only", "plain_keras", "sfocus_second_order", "sfocus_first_order")


def run_variant(name):
    import keras
    import numpy as np

    import keras_models
    from sfocus_tf import SFocusConfig, SFocusModel

    shape = tuple(int(v) for v in FLAGS.shape.split("x"))
    backbone = keras_models.get(FLAGS.model, shape, 10)
    if name == "plain_keras":
        pool = keras.layers.GlobalAveragePooling2D()(backbone.output["last"])
        model = keras.Model(backbone.input, keras.layers.Dense(10)(pool))
        model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(True))
    else:
        model = SFocusModel(backbone, 10, SFocusConfig(second_order=name != "sfocus_first_order"))
        model.compile(optimizer="sgd")
    if name != "build_only":
        rng = np.random.default_rng(0)
        images = rng.normal(size=(FLAGS.batch_size,) + shape).astype("float32")
        labels = rng.integers(0, 10, FLAGS.batch_size)
        for _ in range(FLAGS.steps):
            model.train_on_batch(images, labels)
    # Linux reports ru_maxrss in KiB.
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)


def main(argv):
    del argv
    if FLAGS.variant:
        run_variant(FLAGS.variant)
        return
    peaks = {}
    for name in VARIANTS:
        out = subprocess.run([sys.executable, __file__, f"--variant={name}",
                              f"--model={FLAGS.model}", f"--batch_size={FLAGS.batch_size}",
                              f"--shape={FLAGS.shape}", f"--steps={FLAGS.steps}"],
                             capture_output=True, text=True, check=True)
        peaks[name] = float(out.stdout.strip().splitlines()[-1])
    idle = peaks["build_only"]
    training = {name: peaks[name] - idle for name in VARIANTS[1:]}
    for name in VARIANTS[1:]:
        print(f"| {name} | {peaks[name]:.0f} | {training[name]:.0f} | "
              f"{training[name] / training['plain_keras']:.2f} |")
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            json.dump({"peak_mib": peaks, "training_mib": training}, f, indent=2)


if __name__ == "__main__":
    app.run(main)
