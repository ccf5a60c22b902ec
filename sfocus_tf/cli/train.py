"""sfocus-train: train SFOCUS (or the baseline) on a dataset.

    sfocus-train --config=fashion_mnist_demo --workdir=runs/demo
    sfocus-train --dataset=cifar10 --model=resnet20 --epochs=10 --workdir=runs/c10
    sfocus-train --flagfile=run.flags --baseline --workdir=runs/base

--config names a recipe (sfocus_tf.configs.recipes); every other training flag set on the
command line or in a flagfile overrides the recipe's field. Schedule fields left
unset take the dataset's (schedules.DATASET_SCHEDULES). Restarting with the same
--workdir resumes from the last backup, at its step; a changed config is refused
unless --allow_config_change.
"""

from __future__ import annotations

import os

from absl import flags

from sfocus_tf import cli
from sfocus_tf.common import config_flags
from sfocus_tf.configs import recipes
from sfocus_tf.configs.train_config import TrainConfig
from sfocus_tf.training.train import train_and_evaluate

FLAGS = flags.FLAGS

flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and metrics.")
flags.DEFINE_enum("config", recipes.DEFAULT, recipes.names(),
                  "Recipe to start from; the other flags override its fields.")
flags.DEFINE_bool("baseline", False, "Train the baseline: all attention weights 0.")
flags.DEFINE_bool("allow_config_change", False,
                  "Resume a workdir trained with a different config (by default refused).")
flags.DEFINE_bool("hparams_table", True, "Write the run's own HParams table; a study's "
                  "runs leave it to the study, which writes one over all of them.")
config_flags.define_flags(TrainConfig)


def config_from_flags() -> TrainConfig:
    """The --config recipe with the flags the user set."""
    config = config_flags.config_from_flags(recipes.get(FLAGS.config))
    if FLAGS.baseline:
        config = config.replace(sfocus=config.sfocus.baseline())
    if config.data_dir and not os.path.isdir(config.data_dir):
        raise ValueError(f"--data_dir={config.data_dir} is not a directory")
    return config


def _train() -> str:
    metrics = train_and_evaluate(config_from_flags(), FLAGS.workdir,
                                 allow_config_change=FLAGS.allow_config_change,
                                 hparams_table=FLAGS.hparams_table)
    return (f"test accuracy {metrics['test_accuracy']:.4f}, attention overlap "
            f"{metrics['attention_overlap']:.4f}, consistency "
            f"{metrics['attention_consistency']:.4f}, weights {metrics['weights_checksum']}; "
            f"written to {FLAGS.workdir}")


run = cli.entry_point("sfocus-train", _train, __doc__, required=("workdir",))

if __name__ == "__main__":
    run()
