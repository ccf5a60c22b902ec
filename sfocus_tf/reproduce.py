"""sfocus-reproduce: SFOCUS readings against the baseline, identical recipes, K seeds each.

    sfocus-reproduce --preset=fashion_mnist_cpu --workdir=runs/repro
    sfocus-reproduce --preset=fashion_mnist_study --grid=readings --workdir=studies/fm
    sfocus-reproduce --preset=cifar100 --seeds=0,1,2 --workdir=runs/c100 --data_dir=...

See ``sfocus_tf.reproduction``; the table goes to ``<workdir>/results.md``.
"""

from __future__ import annotations

from absl import flags

from sfocus_tf import cli
from sfocus_tf.reproduction import (ARMS, GRIDS, PRESETS, compare_overlays, markdown,
                                    run_study)

FLAGS = flags.FLAGS
flags.DEFINE_enum("preset", "fashion_mnist_cpu", list(PRESETS), "Recipe.")
flags.DEFINE_string("workdir", None, "Where the runs and the table go.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds; each arm runs every seed.")
flags.DEFINE_string("data_dir", None, "Data directory, if the dataset needs one.")
flags.DEFINE_integer("epochs", None, "Override the preset's epochs.")
flags.DEFINE_enum("grid", "default", list(GRIDS),
                  "Named set of arms: " + "; ".join(f"{k}: {','.join(v)}" for k, v in GRIDS.items()))
flags.DEFINE_bool("train", True, "Train missing runs; --notrain only tabulates the "
                  "finished ones.")
flags.DEFINE_list("compare", None, "Arms whose final overlays (first seed) go side by "
                  "side into <workdir>/overlays-seed-<seed>.png.")
flags.DEFINE_list("arms", None, "Arms to run instead of --grid (baseline is added): "
                  "sfocus (the current default) or one of " + ", ".join(ARMS))


def _reproduce() -> str:
    base = PRESETS[FLAGS.preset].replace(data_dir=FLAGS.data_dir)
    if FLAGS.epochs:
        base = base.replace(epochs=FLAGS.epochs)
    arms = ["baseline"] + FLAGS.arms if FLAGS.arms else GRIDS[FLAGS.grid]
    seeds = [int(s) for s in FLAGS.seeds]
    table = markdown(run_study(base, seeds, FLAGS.workdir, arms, train=FLAGS.train))
    if FLAGS.compare:
        table += "\noverlays: " + compare_overlays(FLAGS.workdir, FLAGS.compare, seeds[0]) + "\n"
    return table


run = cli.entry_point("sfocus-reproduce", _reproduce, required=("workdir",))

if __name__ == "__main__":
    run()
