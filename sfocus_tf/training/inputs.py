"""What a run reads: the endless seeded training stream, the held-out validation
images, the test split, steps per epoch, and the fixed batches of the diagnostics."""

from __future__ import annotations

import tensorflow as tf

from sfocus_tf import data
from sfocus_tf.configs.train_config import TrainConfig


def make_datasets(config: TrainConfig, preset: data.DatasetPreset):
    """(endless shuffled training batches, validation batches, steps per epoch);
    validation is None with ``full_training_set``.

    ``preset`` is ``config.preset()``, looked up once per run and passed down."""
    return (training_batches(config, preset), validation_batches(config, preset),
            steps_per_epoch(config, preset))


def evaluation_batches(config: TrainConfig, preset: data.DatasetPreset, split: str, *,
                       with_boxes: bool = False, train_examples: int | None = None
                       ) -> tf.data.Dataset:
    return data.load(preset, split, config.batch_size, training=False,
                     data_dir=config.data_dir, with_boxes=with_boxes,
                     skip_bad_images=config.skip_bad_images, train_examples=train_examples)


def validation_batches(config: TrainConfig, preset: data.DatasetPreset):
    """The validation images held out of training; None with ``full_training_set``."""
    if config.full_training_set:
        return None
    return evaluation_batches(config, preset, data.VALIDATION)


def training_split(config: TrainConfig) -> str:
    return data.ALL_TRAINING if config.full_training_set else "train"


def training_batches(config: TrainConfig, preset: data.DatasetPreset,
                     skip: int = 0) -> tf.data.Dataset:
    """The endless seeded training stream, from its ``skip``-th batch on.

    A new dataset each call: the shuffle and the augmentation seeds draw new numbers
    for each iterator over one dataset object, so only a fresh one starts the
    stream as an uninterrupted run saw it. The skipped batches are still read and
    augmented (tf.data cannot jump), at the input pipeline's speed.
    """
    train = data.load(preset, training_split(config), config.batch_size, training=True,
                      seed=config.seed, train_examples=config.train_examples,
                      repeat=True, data_dir=config.data_dir,
                      skip_bad_images=config.skip_bad_images)
    return train.skip(skip) if skip else train


def steps_per_epoch(config: TrainConfig, preset: data.DatasetPreset) -> int:
    """``config.steps_per_epoch``, or one pass over the training set (a resolved config)."""
    if config.steps_per_epoch is not None:
        return config.steps_per_epoch
    count = data.num_examples(preset, training_split(config), data_dir=config.data_dir,
                              train_examples=config.train_examples)
    if not count:
        raise ValueError(f"cannot tell the size of {config.dataset}: set steps_per_epoch")
    return max(1, count // config.batch_size)


def boxed_batches(config: TrainConfig, preset: data.DatasetPreset, split: str):
    """A split's batches with their boxes, for localisation metrics; None without boxes
    (``fit`` would read boxes as sample weights, so its validation never gets them)."""
    if not preset.has_boxes:
        return None
    return evaluation_batches(config, preset, split, with_boxes=True)


DIAGNOSTIC_EXAMPLES = 256


def diagnostic_batches(config: TrainConfig, preset: data.DatasetPreset, validation):
    """The fixed batches of the per-epoch attention diagnostics: the first
    ``DIAGNOSTIC_EXAMPLES`` images the run trains on (unaugmented; of the
    ``train_examples`` subset where there is one), and as many validation images
    (None without validation)."""
    train = data.first_examples(
        evaluation_batches(config, preset, training_split(config),
                           train_examples=config.train_examples), DIAGNOSTIC_EXAMPLES)
    held_out = (None if validation is None
                else data.first_examples(validation, DIAGNOSTIC_EXAMPLES))
    return train, held_out
