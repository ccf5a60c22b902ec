"""Input pipeline throughput against the model's training step.

    python bench/pipeline.py [--dataset=fashion_mnist] [--models=resnet20,resnet8]
                             [--batch_size=128]

For each model, times how long the training pipeline (augmentation included) takes
to deliver a batch, and how long the SFOCUS step takes on such a batch, in the same
process; the ratio must be well below 1 for the pipeline not to be the bottleneck.
Prefetching hides the pipeline behind the step when it is below 1.
"""

from __future__ import annotations

import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from common import time_steps  # noqa: E402
from sfocus_tf.configs.train_config import TrainConfig  # noqa: E402
from sfocus_tf.training.build import compiled_model  # noqa: E402
from sfocus_tf.training.inputs import make_datasets  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", "fashion_mnist", "Dataset preset.")
flags.DEFINE_string("data_dir", None, "Data directory.")
flags.DEFINE_list("models", ["resnet20", "resnet8"], "Backbones, one table row each.")
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


def bench_model(name):
    # The library's training pipeline and model; no weight decay, so no L2 terms in the
    # step (default SFocusConfig, SGD with momentum).
    config = TrainConfig(dataset=FLAGS.dataset, model=name, data_dir=FLAGS.data_dir,
                         batch_size=FLAGS.batch_size, weight_decay=0.0)
    preset = config.preset()
    config = config.resolve(preset)
    dataset, _, steps_per_epoch = make_datasets(config, preset)
    # Batches as the training loop gets them: the pipeline's parallel (AUTOTUNE) maps
    # and its prefetch buffer included, drawn one at a time with nothing else running.
    pipeline = seconds_per_batch(dataset, FLAGS.batches)
    model = compiled_model(config, preset, steps_per_epoch)
    one_batch = tf.data.Dataset.from_tensors(next(iter(dataset))).repeat()
    time_steps(model, one_batch, 1)  # trace
    step = float(np.median(time_steps(model, one_batch, FLAGS.steps)))
    return {"dataset": FLAGS.dataset, "model": name, "batch_size": FLAGS.batch_size,
            "pipeline_s_per_batch": pipeline, "sfocus_step_s": step,
            "pipeline_over_step": pipeline / step,
            "pipeline_images_per_s": FLAGS.batch_size / pipeline}


def main(argv):
    del argv
    print("| dataset | model | batch | pipeline s / batch | SFOCUS step s | pipeline / step "
          "| pipeline images / s |\n|---|---|---|---|---|---|---|")
    rows = []
    for name in FLAGS.models:
        row = bench_model(name)
        rows.append(row)
        print(f"| {row['dataset']} | {name} | {row['batch_size']} | "
              f"{row['pipeline_s_per_batch']:.4f} | {row['sfocus_step_s']:.4f} | "
              f"{row['pipeline_over_step']:.3f} | {row['pipeline_images_per_s']:.0f} |",
              flush=True)
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    app.run(main)
