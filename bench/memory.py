"""Peak memory of training: SFOCUS against a plain Keras step, same model and batch.

    python bench/memory.py [--model=resnet20] [--batch_size=128] [--shape=32x32x3]

Each variant trains a few steps in a fresh process (peak resident memory,
``ru_maxrss``, only grows, so one process per variant); an idle process that only
builds (and compiles) the model gives the baseline to subtract, the ``build_only`` row.
Every variant uses plain SGD (no momentum slots).
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
    # Imported here: the parent process only starts the variants and needs no TF.
    import numpy as np

    import keras_models
    from common import VARIANTS as SFOCUS_VARIANTS
    from common import parse_shape, plain_model, sfocus_model

    shape = parse_shape(FLAGS.shape)
    backbone = keras_models.get(FLAGS.model, shape, 10)
    # Plain SGD (no momentum slots), as this benchmark has always measured.
    if name == "plain_keras":
        model = plain_model(backbone, 10, optimizer="sgd")
    else:  # build_only: the second-order model, built and compiled but never trained
        config = SFOCUS_VARIANTS.get(name, SFOCUS_VARIANTS["sfocus_second_order"])
        model = sfocus_model(backbone, 10, config, optimizer="sgd")
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
    print("| variant | peak RSS (MiB) | training memory above idle (MiB) | / plain |\n"
          "|---|---|---|---|")
    print(f"| build_only | {idle:.0f} | 0 | - |")
    for name in VARIANTS[1:]:
        print(f"| {name} | {peaks[name]:.0f} | {training[name]:.0f} | "
              f"{training[name] / training['plain_keras']:.2f} |")
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            json.dump({"peak_mib": peaks, "training_mib": training}, f, indent=2)


if __name__ == "__main__":
    app.run(main)
