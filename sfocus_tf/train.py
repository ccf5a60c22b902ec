"""sfocus-train: train SFOCUS (or the baseline) on a dataset preset.

    sfocus-train --dataset=fashion_mnist --model=resnet20 --workdir=runs/fmnist
    sfocus-train --flagfile=run.flags --baseline

Flags left unset take the dataset preset's value; every SFocusConfig field is a
flag. Restarting with the same --workdir resumes from the last backup, at its step;
a changed config is refused unless --allow_config_change.
"""

from __future__ import annotations

import dataclasses
import os

from absl import flags

from sfocus_tf import cli
from sfocus_tf.config import CHOICES, SFocusConfig
from sfocus_tf.training import train_and_evaluate
from sfocus_tf.train_config import (MIXED_PRECISION, OPTIMIZERS, SCHEDULES, STRATEGIES,
                                    TrainConfig)

FLAGS = flags.FLAGS

flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and metrics.")
flags.DEFINE_string("dataset", "fashion_mnist", "Dataset preset (sfocus_tf.data.names()).")
flags.DEFINE_string("model", "resnet20", "Backbone (keras_models.names()).")
flags.DEFINE_string("data_dir", None, "Data directory (tfds dir, image folder, .gz folder).")
flags.DEFINE_integer("image_size", None, "Square image size; default: the preset's.")
flags.DEFINE_integer("epochs", None, "Training epochs; default: the preset's.")
flags.DEFINE_integer("steps_per_epoch", None, "Steps per epoch; default: one pass.")
flags.DEFINE_integer("eval_steps", None, "Evaluation batches; default: the whole test set.")
flags.DEFINE_integer("batch_size", None, "Global batch size; default: the preset's.")
flags.DEFINE_float("lr", None, "Peak learning rate; default: the preset's.")
flags.DEFINE_enum("schedule", None, SCHEDULES, "Learning-rate schedule.")
flags.DEFINE_list("milestones", None, "Epochs at which multistep divides the lr by 10.")
flags.DEFINE_float("warmup_epochs", 0.0, "Linear warm-up (cosine schedule).")
flags.DEFINE_float("weight_decay", None, "Weight decay; default: the preset's.")
flags.DEFINE_enum("optimizer", "sgd", OPTIMIZERS, "Optimizer.")
flags.DEFINE_float("momentum", 0.9, "SGD momentum (Nesterov).")
flags.DEFINE_integer("seed", 0, "Random seed (weights, shuffling, augmentation).")
flags.DEFINE_enum("jit_compile", "auto", ["auto", "true", "false"],
                  "XLA for the training step; auto: on with a GPU, off on CPU.")
flags.DEFINE_enum("mixed_precision", "none", MIXED_PRECISION, "Keras dtype policy.")
flags.DEFINE_enum("strategy", "auto", STRATEGIES, "tf.distribute strategy.")
flags.DEFINE_integer("backup_every_steps", 200, "Steps between resumable backups.")
flags.DEFINE_bool("baseline", False, "Train the baseline: all attention weights 0.")
flags.DEFINE_bool("skip_bad_images", False, "Image folders: leave out (and count) files that "
                  "do not decode, instead of failing before training.")
flags.DEFINE_bool("allow_config_change", False,
                  "Resume a workdir trained with a different config (by default refused).")

# One flag per SFocusConfig field, with its default and allowed values.
for _field in dataclasses.fields(SFocusConfig):
    _help = f"SFocusConfig.{_field.name}"
    if _field.name in CHOICES:
        flags.DEFINE_enum(_field.name, _field.default, CHOICES[_field.name], _help)
    elif isinstance(_field.default, bool):
        flags.DEFINE_bool(_field.name, _field.default, _help)
    elif isinstance(_field.default, int):
        flags.DEFINE_integer(_field.name, _field.default, _help)
    else:
        flags.DEFINE_float(_field.name, _field.default, _help)


def config_from_flags() -> TrainConfig:
    sfocus = SFocusConfig(**{f.name: FLAGS[f.name].value for f in dataclasses.fields(SFocusConfig)})
    if FLAGS.baseline:
        sfocus = sfocus.baseline()
    if FLAGS.data_dir and not os.path.isdir(FLAGS.data_dir):
        raise ValueError(f"--data_dir={FLAGS.data_dir} is not a directory")
    return TrainConfig(
        dataset=FLAGS.dataset, model=FLAGS.model, data_dir=FLAGS.data_dir,
        image_size=FLAGS.image_size, epochs=FLAGS.epochs,
        steps_per_epoch=FLAGS.steps_per_epoch, eval_steps=FLAGS.eval_steps,
        batch_size=FLAGS.batch_size, learning_rate=FLAGS.lr, schedule=FLAGS.schedule,
        milestones=None if FLAGS.milestones is None else tuple(map(int, FLAGS.milestones)),
        warmup_epochs=FLAGS.warmup_epochs, weight_decay=FLAGS.weight_decay,
        optimizer=FLAGS.optimizer, momentum=FLAGS.momentum, sfocus=sfocus, seed=FLAGS.seed,
        jit_compile={"auto": "auto", "true": True, "false": False}[FLAGS.jit_compile],
        mixed_precision=FLAGS.mixed_precision, strategy=FLAGS.strategy,
        backup_every_steps=FLAGS.backup_every_steps, skip_bad_images=FLAGS.skip_bad_images)


def _train() -> str:
    config = config_from_flags()
    metrics = train_and_evaluate(config, FLAGS.workdir,
                                 allow_config_change=FLAGS.allow_config_change)
    return (f"test accuracy {metrics['test_accuracy']:.4f}, attention overlap "
            f"{metrics['attention_overlap']:.4f}, consistency "
            f"{metrics['attention_consistency']:.4f}, weights {metrics['weights_checksum']}; "
            f"written to {FLAGS.workdir}")


run = cli.entry_point("sfocus-train", _train, required=("workdir",))

if __name__ == "__main__":
    run()
