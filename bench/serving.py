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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from common import exported_signatures, latency_rows  # noqa: E402
from sfocus_tf import data  # noqa: E402
from sfocus_tf.configs.train_config import TrainConfig  # noqa: E402
from sfocus_tf.training.build import build_model  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", "fashion_mnist", "Dataset preset (input size, normalisation).")
flags.DEFINE_string("model", "resnet20", "Backbone.")
flags.DEFINE_integer("calls", 200, "Timed calls per signature and batch size.")
flags.DEFINE_list("batch_sizes", ["1", "32"], "Request batch sizes.")
flags.DEFINE_string("output", "", "Write the results as JSON here.")


def main(argv):
    del argv
    # Untrained, built as for training; weight decay would only add training losses.
    config = TrainConfig(dataset=FLAGS.dataset, model=FLAGS.model, weight_decay=0.0).resolve()
    preset = data.get_preset(config.dataset, image_size=config.image_size)
    model = build_model(config, preset)
    batch_sizes = [int(batch) for batch in FLAGS.batch_sizes]
    with tempfile.TemporaryDirectory() as root:
        signatures = exported_signatures(model, preset, root, max(batch_sizes))
        rows = latency_rows(signatures, ("serving_default", "attention"), batch_sizes,
                            preset.image_size, FLAGS.calls)
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
