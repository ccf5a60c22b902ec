"""sfocus-tune: Keras Tuner search over the SFOCUS loss weights, sigma, theta and lr.

    sfocus-tune --dataset=fashion_mnist --model=resnet8 --workdir=runs/tune \
        --tuner=bayesian --max_trials=20 --epochs=3 --ranges="w_ac=0:1,theta=fixed"
    sfocus-train --flagfile=runs/tune/best.flags --workdir=runs/best

Takes every sfocus-train flag (--config and the fields it overrides) as the base
configuration of each trial. Exits
non-zero when any trial did not complete.
"""

from __future__ import annotations

import sys

from absl import flags

from sfocus_tf import cli
from sfocus_tf.cli import train  # also defines the training flags, reused here
from sfocus_tf.studies.tuning import TUNERS, SearchSpace, search

FLAGS = flags.FLAGS
flags.DEFINE_enum("tuner", "random", list(TUNERS), "Search algorithm.")
flags.DEFINE_integer("max_trials", 10, "Trials (random, bayesian).")
flags.DEFINE_string("ranges", "", "Overrides of the default ranges: "
                    "'name=low:high[:log]' or 'name=fixed', comma-separated; names: "
                    "w_as_last, w_as_in, w_ac, w_bw (searched with --class_block_width "
                    "only), sigma, theta, lr.")
flags.DEFINE_string("objective", "val_accuracy", "Metric to optimise.")
flags.DEFINE_enum("direction", "max", ["max", "min"], "Whether more is better.")


def _tune() -> str:
    space = SearchSpace.parse(FLAGS.ranges)
    results = search(train.config_from_flags(), FLAGS.workdir, space, tuner=FLAGS.tuner,
                     max_trials=FLAGS.max_trials, objective=FLAGS.objective,
                     direction=FLAGS.direction)
    failed = results.failed
    summary = (f"{len(results.rows)} trials, {len(failed)} not completed; table: "
               f"{FLAGS.workdir}/results.md; best: {results.best_flagfile}")
    if not results.ok:
        print(summary)
        for row in failed:
            print(f"trial {row['trial']} {row['status']}: {row['error']}", file=sys.stderr)
        raise cli.CommandError(f"{len(failed)} trial(s) failed" if failed else "no trial ran")
    return summary


run = cli.entry_point("sfocus-tune", _tune, __doc__, required=("workdir",))

if __name__ == "__main__":
    run()
