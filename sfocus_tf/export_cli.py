"""sfocus-export: a trained run as a versioned SavedModel for TensorFlow Serving.

    sfocus-export --workdir=runs/fmnist --export_dir=savedmodels/fashion_mnist [--version=N]
"""

from __future__ import annotations

from absl import flags

from sfocus_tf import cli, data
from sfocus_tf.evaluation import load_run
from sfocus_tf.export import export_saved_model

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A training run's directory (model.keras, config.json).")
flags.DEFINE_string("export_dir", None, "Model directory; versions go in <export_dir>/<N>/.")
flags.DEFINE_integer("version", None, "Version number; default: one above the highest.")
flags.DEFINE_bool("overwrite", False, "Replace an existing version.")
flags.DEFINE_integer("top_k", 5, "Classes returned by serving_default.")


def _export() -> str:
    config, model = load_run(FLAGS.workdir)
    # Only the image size and normalisation go into the graph: no need for the data.
    preset = data.get_preset(config["dataset"], image_size=config["image_size"])
    path = export_saved_model(model, preset, FLAGS.export_dir, FLAGS.version,
                              FLAGS.overwrite, FLAGS.top_k)
    return f"exported {path}"


run = cli.entry_point("sfocus-export", _export, required=("workdir", "export_dir"))

if __name__ == "__main__":
    run()
