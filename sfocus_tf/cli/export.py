"""sfocus-export: a trained run as a versioned SavedModel for TensorFlow Serving.

    sfocus-export --workdir=runs/fmnist --export_dir=savedmodels/fashion_mnist [--model_version=N]

Without --model_version, writes the next version: TF Serving loads each new version
once and never reloads one it already serves, so a new number is how a running
server picks up a new model.
"""

from __future__ import annotations

import os

from absl import flags

from sfocus_tf import cli
from sfocus_tf.serving.export import export_run

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A training run's directory (model.keras, config.json).")
flags.DEFINE_string("export_dir", None, "Model directory; versions go in <export_dir>/<N>/.")
flags.DEFINE_integer("model_version", None, "Version number; default: one above the highest.")
flags.DEFINE_bool("overwrite", False, "Replace an existing version (in one atomic swap; "
                  "a running server keeps serving the version it loaded).")
flags.DEFINE_integer("top_k", 5, "Classes returned by serving_default.")
flags.DEFINE_enum("attention_reading", "gradcam", ["gradcam", "training"],
                  "What the attention signature serves: gradcam, standard Grad-CAM (the "
                  "maps sfocus-eval, the overlays and TensorBoard show); training, the maps "
                  "of the model's own training reading (e.g. softmax maps), which differ.")
flags.DEFINE_integer("max_batch_size", 64, "Largest request (images) the signatures accept; "
                     "larger ones are rejected with an error.")


def _export() -> str:
    replacing = FLAGS.model_version is not None and os.path.exists(
        os.path.join(FLAGS.export_dir, str(FLAGS.model_version)))
    path = export_run(FLAGS.workdir, FLAGS.export_dir, version=FLAGS.model_version,
                      overwrite=FLAGS.overwrite, top_k=FLAGS.top_k,
                      max_batch_size=FLAGS.max_batch_size,
                      attention_reading=FLAGS.attention_reading)
    if replacing:
        return (f"exported {path} (replaced in one swap; a running TF Serving keeps the "
                "version it loaded until restarted: export a new version to roll out)")
    return f"exported {path}"


run = cli.entry_point("sfocus-export", _export, __doc__, required=("workdir", "export_dir"))

if __name__ == "__main__":
    run()
