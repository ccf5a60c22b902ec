"""sfocus-reproduce: baseline against SFOCUS, identical recipes, K seeds each.

    sfocus-reproduce --preset=fashion_mnist_cpu --workdir=runs/repro
    sfocus-reproduce --preset=cifar100 --seeds=0,1,2 --workdir=runs/c100 --data_dir=...

See ``sfocus_tf.reproduction``; the table goes to ``<workdir>/results.md``.
"""

from __future__ import annotations

from absl import flags

from sfocus_tf import cli
from sfocus_tf.reproduction import PRESETS, markdown, run_study

FLAGS = flags.FLAGS
flags.DEFINE_enum("preset", "fashion_mnist_cpu", list(PRESETS), "Recipe.")
flags.DEFINE_string("workdir", None, "Where the runs and the table go.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds; each arm runs every seed.")
flags.DEFINE_string("data_dir", None, "Data directory, if the dataset needs one.")
flags.DEFINE_integer("epochs", None, "Override the preset's epochs.")


def _reproduce() -> str:
    base = PRESETS[FLAGS.preset].replace(data_dir=FLAGS.data_dir)
    if FLAGS.epochs:
        base = base.replace(epochs=FLAGS.epochs)
    return markdown(run_study(base, [int(s) for s in FLAGS.seeds], FLAGS.workdir))


run = cli.entry_point("sfocus-reproduce", _reproduce, required=("workdir",))

if __name__ == "__main__":
    run()
