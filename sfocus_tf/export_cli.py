"""sfocus-export: a trained run as a versioned SavedModel for TensorFlow Serving.

    sfocus-export --workdir=runs/fmnist --export_dir=savedmodels/fashion_mnist [--version=N]
"""

from __future__ import annotations

import os

from absl import flags

from sfocus_tf import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A training run's directory (model.keras, config.json).")
flags.DEFINE_string("export_dir", None, "Model directory; versions go in <export_dir>/<N>/.")
flags.DEFINE_integer("version", None, "Version number; default: one above the highest.")
flags.DEFINE_bool("overwrite", False, "Replace an existing version.")
flags.DEFINE_integer("top_k", 5, "Classes returned by serving_default.")


def _export() -> str:
    model_path = os.path.join(FLAGS.workdir, "model.keras")
    if not os.path.isfile(model_path):
        raise FileNotFoundError(f"{model_path} not found: is --workdir a finished run?")
    import keras

    from sfocus_tf import data
    from sfocus_tf.checkpointing import read_json
    from sfocus_tf.export import export_saved_model
    config = read_json(os.path.join(FLAGS.workdir, "config.json"))
    preset = data.get_preset(config["dataset"], image_size=config["image_size"],
                             data_dir=config["data_dir"])
    path = export_saved_model(keras.models.load_model(model_path), preset, FLAGS.export_dir,
                              FLAGS.version, FLAGS.overwrite, FLAGS.top_k)
    return f"exported {path}"


run = cli.entry_point("sfocus-export", _export, required=("workdir", "export_dir"))

if __name__ == "__main__":
    run()
