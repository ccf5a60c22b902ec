"""sfocus-reproduce: SFOCUS readings against the baseline, identical recipes, K seeds each.

    sfocus-reproduce --config=fashion_mnist_cpu --workdir=runs/repro
    sfocus-reproduce --config=fashion_mnist_study --grid=readings --workdir=studies/fm
    sfocus-reproduce --config=cifar100 --seeds=0,1,2 --workdir=runs/c100 --data_dir=...

--config names a recipe (sfocus_tf.configs.recipes); the training flags override its fields
as in sfocus-train. The sfocus arm trains the resulting SFocusConfig, the other arms
their own readings. See ``sfocus_tf.studies.reproduction``; the table goes to
``<workdir>/results.md``.
"""

from __future__ import annotations

from absl import flags

from sfocus_tf import cli
from sfocus_tf.common import config_flags
from sfocus_tf.configs import recipes
from sfocus_tf.studies.cross_readings import cross_readings
from sfocus_tf.studies.parallel_runs import RunsFailed
from sfocus_tf.studies.reproduction import ARMS, GRIDS, compare_overlays, markdown, run_study
from sfocus_tf.configs.train_config import TrainConfig

FLAGS = flags.FLAGS
flags.DEFINE_enum("config", "fashion_mnist_cpu", recipes.names(),
                  "Recipe every arm trains with; the training flags override its fields.")
flags.DEFINE_string("workdir", None, "Where the runs and the table go.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds; each arm runs every seed.")
flags.DEFINE_enum("grid", "default", list(GRIDS),
                  "Named set of arms: " + "; ".join(f"{k}: {','.join(v)}" for k, v in GRIDS.items()))
flags.DEFINE_bool("train", True, "Train missing runs; --notrain only tabulates the "
                  "finished ones.")
flags.DEFINE_bool("report_test", False, "Also tabulate the test split (results.md). "
                  "Studies select on validation: report the test split once, at the end.")
flags.DEFINE_bool("cross_readings", False, "Also read every finished model with every "
                  "arm's map definition (<workdir>/cross_readings.md): needs the models, "
                  "which are not committed.")
flags.DEFINE_list("compare", None, "Arms whose final overlays (first seed) go side by "
                  "side into <workdir>/overlays-seed-<seed>.png.")
flags.DEFINE_list("arms", None, "Arms to run instead of --grid (baseline is added): "
                  "sfocus (the --config's reading) or one of " + ", ".join(ARMS))
flags.DEFINE_integer("parallel", 1, "Runs trained at once, each in its own sfocus-train "
                     "process (a machine with many cores or a GPU); 1: one after the other "
                     "in this process.")
config_flags.define_flags(TrainConfig, exclude=("seed",))  # --seeds instead


def _reproduce() -> str:
    base = config_flags.config_from_flags(recipes.get(FLAGS.config))
    arms = ["baseline"] + FLAGS.arms if FLAGS.arms else GRIDS[FLAGS.grid]
    seeds = [int(s) for s in FLAGS.seeds]
    try:
        summary = run_study(base, seeds, FLAGS.workdir, arms, train=FLAGS.train,
                            report_test=FLAGS.report_test, parallel=FLAGS.parallel)
    except RunsFailed as failed:
        raise cli.CommandError(str(failed)) from failed
    table = markdown(summary, FLAGS.report_test)
    if FLAGS.cross_readings:
        cross_readings(FLAGS.workdir, arms, seeds)
        table += f"\ncross readings: {FLAGS.workdir}/cross_readings.md\n"
    if FLAGS.compare:
        table += "\noverlays: " + compare_overlays(FLAGS.workdir, FLAGS.compare, seeds[0]) + "\n"
    return table


run = cli.entry_point("sfocus-reproduce", _reproduce, __doc__, required=("workdir",))

if __name__ == "__main__":
    run()
