"""sfocus-eval: accuracy and attention quality of a trained run.

    sfocus-eval --workdir=runs/cub [--split=test] [--eval_steps=N] [--output_dir=DIR]
    sfocus-eval --levels_of=fashion_mnist_duo --map_size=10 [--split=validation]

Writes ``eval.json``, ``eval.md`` and ``overlays.png`` (image | true class |
confusing class) into ``--output_dir`` (default ``<workdir>/eval``): top-1/top-5
accuracy or mAP, attention overlap and consistency, localisation inside the
ground-truth boxes (share of attention energy, pointing game) where the dataset
has boxes, and the most confused class pairs with their attention overlap.
A progress bar counts the batches (one line at the end when stdout is not a
terminal); memory stays that of one batch whatever the size of the split.

``--levels_of`` reads no model: it prints the localisation figures that maps which
learnt nothing reach on a dataset with boxes (the image's ink at the map's
resolution, a uniform map), the levels a trained model's figures stand beside.
"""

from __future__ import annotations

import json
import os

from absl import flags

from sfocus_tf import cli
from sfocus_tf.evaluation.evaluate import evaluate_run, no_learning_levels

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A training run's directory (model.keras, config.json).")
flags.DEFINE_string("output_dir", None, "Where to write; default: <workdir>/eval.")
flags.DEFINE_string("split", None, "Split to evaluate; default: the preset's test split.")
flags.DEFINE_string("data_dir", None, "Override the run's data directory.")
flags.DEFINE_integer("eval_steps", None, "Batches to evaluate; default: the whole split.")
flags.DEFINE_integer("batch_size", 64, "Evaluation batch size.")
flags.DEFINE_integer("overlays", 16, "Examples in overlays.png.")
flags.DEFINE_string("levels_of", None, "A dataset with boxes: print the localisation figures "
                    "of maps that learnt nothing (ink, uniform) instead of evaluating a run.")
flags.DEFINE_integer("map_size", None, "With --levels_of: the side of the model's last-layer "
                     "maps (ResNet-8: the image side / 4).")
flags.DEFINE_bool("skip_bad_images", None, "Image folders: leave out (and count) files that "
                  "do not decode instead of failing; default: the run's own setting.")


def _levels() -> str:
    if not FLAGS.map_size or FLAGS.map_size < 1:
        raise ValueError("--levels_of needs --map_size, the side of the last-layer maps")
    levels = no_learning_levels(FLAGS.levels_of, FLAGS.split, FLAGS.map_size,
                                data_dir=FLAGS.data_dir, batch_size=FLAGS.batch_size,
                                eval_steps=FLAGS.eval_steps)
    return json.dumps({name: round(value, 4) for name, value in levels.items()})


def _evaluate() -> str:
    if FLAGS.levels_of:
        return _levels()
    if not FLAGS.workdir:
        raise ValueError("--workdir is required (or --levels_of=DATASET)")
    output_dir = FLAGS.output_dir or os.path.join(FLAGS.workdir, "eval")
    results = evaluate_run(FLAGS.workdir, output_dir, split=FLAGS.split,
                           data_dir=FLAGS.data_dir, eval_steps=FLAGS.eval_steps,
                           batch_size=FLAGS.batch_size, num_overlays=FLAGS.overlays,
                           skip_bad_images=FLAGS.skip_bad_images)
    shown = {k: round(v, 4) for k, v in results.items() if isinstance(v, float)}
    return f"{shown}; written to {output_dir}"


run = cli.entry_point("sfocus-eval", _evaluate, __doc__)

if __name__ == "__main__":
    run()
