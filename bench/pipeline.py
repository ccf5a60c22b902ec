"""Input pipeline throughput against the model's training step.

    python bench/pipeline.py [--dataset=fashion_mnist] [--model=resnet20] [--batch_size=128]

Times how long the training pipeline (augmentation included) takes to deliver a
batch, and how long the SFOCUS step takes on such a batch, in the same process;
the ratio must be well below 1 for the pipeline not to be the bottleneck.
Prefetching hides the pipeline behind the step when it is below 1.
"""

from __future__ import annotations

import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

import keras_models  # noqa: E402
from sfocus_tf import SFocusModel, data  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", "fashion_mnist", "Dataset preset.")
flags.DEFINE_string("data_dir", None, "Data directory.")
flags.DEFINE_string("model", "resnet20", "Backbone.")
flags.DEFINE_integer("batch_size", 128, "Batch size.")
flags.DEFINE_integer("batches", 200, "Pipeline batches to time.")
flags.DEFINE_integer("steps", 10, "Model steps to time.")
flags.DEFINE_string("output", "", "Write the results as JSON here.")


def seconds_per_batch(dataset, count):
    iterator = iter(dataset)
    next(iterator)  # build the pipeline, fill the buffers
    start = time.perf_counter()
    for _ in range(count):
        next(iterator)
    return (time.perf_counter() - start) / count


def main(argv):
    del argv
    preset = data.get_preset(FLAGS.dataset, data_dir=FLAGS.data_dir)
    dataset = data.load(FLAGS.dataset, None, FLAGS.batch_size, training=True, seed=0,
                        repeat=True, data_dir=FLAGS.data_dir)
    # Unprefetched, single-threaded consumer: the pipeline's own cost per batch.
    pipeline = seconds_per_batch(dataset, FLAGS.batches)
    model = SFocusModel(keras_models.get(FLAGS.model, preset.image_size, preset.num_classes),
                        preset.num_classes)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    batch = next(iter(dataset))
    model.train_on_batch(*batch)  # trace
    times = []
    for _ in range(FLAGS.steps):
        start = time.perf_counter()
        model.train_on_batch(*batch)
        times.append(time.perf_counter() - start)
    step = float(np.median(times))
    result = {"dataset": FLAGS.dataset, "model": FLAGS.model, "batch_size": FLAGS.batch_size,
              "pipeline_s_per_batch": pipeline, "sfocus_step_s": step,
              "pipeline_over_step": pipeline / step,
              "pipeline_images_per_s": FLAGS.batch_size / pipeline}
    print(f"| {FLAGS.dataset} | {FLAGS.model} | {FLAGS.batch_size} | {pipeline:.4f} | "
          f"{step:.4f} | {pipeline / step:.3f} | {FLAGS.batch_size / pipeline:.0f} |")
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    app.run(main)
