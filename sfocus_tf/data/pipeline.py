"""The one entry point: a dataset in, batches ``(images, labels[, boxes])`` out.

A dataset is its name, or the ``DatasetPreset`` a run resolved once (``get_preset``,
``TrainConfig.preset()``) and passes to every call, so that it is not looked up again.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from typing import Sequence

import tensorflow as tf

import numpy as np

from sfocus_tf.data import cluttered, duo, fashion_mnist, image_folder, splits, tfds_sources
from sfocus_tf.data.augment import pad_crop_flip, random_resized_crop_flip
from sfocus_tf.data.preprocess import eval_transform, normalize, resize_to
from sfocus_tf.data.presets import PAD_CROP_FLIP, RESIZED_CROP_FLIP, DatasetPreset, lookup

# Built from the Debian files, one example per garment, in file order.
FASHION_MNIST_SOURCES = ("fashion_mnist", "fashion_mnist_cluttered", "fashion_mnist_duo")
_PLACED = {"fashion_mnist_cluttered": cluttered, "fashion_mnist_duo": duo}


def get_preset(name: str, *, image_size: int | Sequence[int] | None = None,
               data_dir: str | None = None) -> DatasetPreset:
    """The preset of ``name`` with ``image_size`` overridden.

    For image folders ``data_dir`` is the folder, and num_classes is read from it.
    """
    preset = lookup(name).with_image_size(image_size)
    if preset.source == "image_folder" and data_dir is not None:
        num_classes = len(image_folder.list_classes(data_dir))
        preset = dataclasses.replace(preset, num_classes=num_classes)
    return preset


def _preset_of(dataset: str | DatasetPreset, *, image_size=None, data_dir=None
               ) -> DatasetPreset:
    """``dataset`` itself when it is a preset, else the preset of that name."""
    if isinstance(dataset, DatasetPreset):
        return dataset.with_image_size(image_size)
    return get_preset(dataset, image_size=image_size, data_dir=data_dir)


def _source(preset: DatasetPreset, split: str, *, data_dir, manual_dir, shuffle, seed,
            with_boxes, download, folder_options) -> tf.data.Dataset:
    """Decoded examples ``{"image": uint8 [H, W, C], "label", ["boxes", ["box_labels" |
    "distractor_label"]]}``."""
    if preset.source == "tfds":
        return tfds_sources.make_dataset(preset, split, data_dir=data_dir,
                                         manual_dir=manual_dir, shuffle_files=shuffle,
                                         seed=seed, with_boxes=with_boxes, download=download)
    if preset.source == "fashion_mnist":
        return fashion_mnist.make_dataset(split, data_dir)
    if preset.source in _PLACED:
        return _PLACED[preset.source].make_dataset(split, data_dir, with_boxes)
    if data_dir is None:
        raise ValueError(f"{preset.name}: data_dir must be the image folder's root")
    return image_folder.make_dataset(data_dir, split, channels=preset.image_size[-1],
                                     shuffle=shuffle, seed=seed, **folder_options)


# Within ``labels_read_once``: (dataset, split, where, options) -> its labels.
_READ_LABELS: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "read_labels", default=None)


@contextlib.contextmanager
def labels_read_once():
    """Within it, each split's labels are read once, however many pipelines carve the
    validation images or a ``train_examples`` subset out of it. A run builds several
    (training, validation, diagnostics, overlays, evaluation, steps per epoch), and a
    tfds split's labels are read through every record of its files: ImageNet's whole
    training set, each time. Scoped, not global: the data may change between runs (a
    test's mock data, a folder being filled)."""
    token = _READ_LABELS.set({})
    try:
        yield
    finally:
        _READ_LABELS.reset(token)


def _source_labels(preset: DatasetPreset, split: str, *, data_dir, folder_options
                   ) -> np.ndarray:
    """Every label of one of the dataset's own splits, in the order ``_source`` reads it
    unshuffled: what the validation carve-out is drawn from."""
    read = _READ_LABELS.get()
    read = {} if read is None else read  # outside labels_read_once: read every time
    options = {"skip_bad_images": False, **folder_options}  # num_examples leaves it out
    key = (preset.name, preset.source, preset.image_size, split, str(data_dir),
           tuple(sorted(options.items())))
    if key not in read:
        read[key] = _read_source_labels(preset, split, data_dir=data_dir,
                                        folder_options=folder_options)
        read[key].setflags(write=False)  # shared by every pipeline of the run
    return read[key]


def _read_source_labels(preset: DatasetPreset, split: str, *, data_dir, folder_options
                        ) -> np.ndarray:
    if preset.source == "tfds":
        return tfds_sources.labels(preset, split, data_dir)
    if preset.source in FASHION_MNIST_SOURCES:
        return fashion_mnist.load_labels(split, data_dir)
    options = {k: v for k, v in folder_options.items() if k != "skip_bad_images"}
    paths, labels = image_folder.list_split(data_dir, split, **options)
    if folder_options.get("skip_bad_images"):  # positions count the readable files only
        bad = {path for path, _ in image_folder.find_unreadable(paths, preset.image_size[-1])}
        labels = [label for path, label in zip(paths, labels) if path not in bad]
    return np.asarray(labels)


def _kept(preset: DatasetPreset, split: str, part: str | None, train_examples: int | None,
          *, data_dir, folder_options) -> np.ndarray | None:
    """Which examples of the dataset's own ``split`` to keep (``splits.part_mask``);
    None for all of them."""
    if part is None and train_examples is None:
        return None
    labels = _source_labels(preset, split, data_dir=data_dir, folder_options=folder_options)
    return splits.part_mask(labels, preset.num_classes, preset.multi_label, part,
                            train_examples)


def _part_of(dataset: tf.data.Dataset, keep: np.ndarray) -> tf.data.Dataset:
    """The examples of ``dataset`` whose position has ``keep`` True.

    The filter hides the size from tf.data, which ``keep`` knows: without it Keras
    reads a validation set to its end before it can count the batches, and warns
    that the input ran out of data."""
    kept = int(np.count_nonzero(keep))
    keep = tf.constant(keep)
    return dataset.enumerate().filter(lambda i, _: tf.gather(keep, i)).map(
        lambda _, example: example).apply(tf.data.experimental.assert_cardinality(kept))


def _augmentation_seeds(seed: int | None) -> tf.data.Dataset:
    """An endless stream of [2] seeds; new numbers each epoch, the same ones for a seed.

    (A plain seeded random op in the map would give the same numbers every time the
    dataset is iterated again, i.e. every epoch.)
    """
    seed = None if seed is None else seed + 1  # not the shuffle's own stream
    return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)


def _as_tuple(example, images, boxes):
    if boxes is None:
        return images, example["label"]
    box_labels = example.get("box_labels")
    if "distractor_label" in example:  # duo: the labelled garment's box, then the other's
        box_labels = tf.stack([example["label"], example["distractor_label"]], axis=-1)
    if box_labels is not None:  # several boxes per image: say which class each is
        return images, example["label"], {"boxes": boxes, "labels": box_labels}
    return images, example["label"], boxes


def _random_resized_crop(example, seed, preset):
    image, boxes = random_resized_crop_flip(example["image"], seed, preset.image_size[:2],
                                            example.get("boxes"))
    return _as_tuple(example, normalize(image, preset), boxes)


def _augment_batch(images, seed, preset):
    images = resize_to(images, preset.image_size[:2])
    if preset.augmentation == PAD_CROP_FLIP:
        images = pad_crop_flip(images, seed, preset.pad)
    return normalize(images, preset)


def _transform_then_batch(dataset, preset, *, training, seed, batch_size, drop_remainder):
    """Images of any size (ImageNet-like): each is cropped to one size, then batched."""
    if training:
        dataset = tf.data.Dataset.zip(dataset, _augmentation_seeds(seed)).map(
            lambda example, example_seed: _random_resized_crop(example, example_seed, preset),
            num_parallel_calls=tf.data.AUTOTUNE)
    else:
        dataset = dataset.map(
            lambda example: _as_tuple(
                example, *eval_transform(example["image"], preset, example.get("boxes"))),
            num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size, drop_remainder=drop_remainder)


def _batch_then_transform(dataset, preset, *, training, seed, batch_size, drop_remainder):
    """Small fixed-size images: whole batches are resized and augmented at once, far
    cheaper on CPU."""
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    if training:
        return tf.data.Dataset.zip(dataset, _augmentation_seeds(seed)).map(
            lambda batch, batch_seed: (_augment_batch(batch["image"], batch_seed, preset),
                                       batch["label"]),
            num_parallel_calls=tf.data.AUTOTUNE)
    # no crop at evaluation for these presets: boxes pass through unchanged
    return dataset.map(lambda batch: _as_tuple(batch, eval_transform(batch["image"], preset)[0],
                                               batch.get("boxes")),
                       num_parallel_calls=tf.data.AUTOTUNE)


def load(dataset: str | DatasetPreset, split: str | None, batch_size: int, *,
         training: bool, data_dir: str | None = None, manual_dir: str | None = None,
         image_size: int | Sequence[int] | None = None, seed: int | None = None,
         with_boxes: bool = False, drop_remainder: bool | None = None,
         shuffle: bool | None = None, cache: bool | None = None, repeat: bool = False,
         download: bool = True, test_fraction: float = 0.2,
         train_per_class: int | None = None, skip_bad_images: bool = False,
         train_examples: int | None = None) -> tf.data.Dataset:
    """Batches ``(images float32 [B, H, W, C] normalised, labels)``.

    Labels are int32 [B], or float32 multi-hot [B, N] for multi-label data (VOC).
    ``with_boxes`` adds a third element: normalised [ymin, xmin, ymax, xmax] boxes that
    went through the same crop/flip/resize as the image: float32 [B, 4] for CUB, and for
    VOC ``{"boxes": float32 [B, 64, 4], "labels": int32 [B, 64]}`` padded with label -1,
    for fashion_mnist_duo ``{"boxes": float32 [B, 2, 4], "labels": int32 [B, 2]}``: the
    labelled garment's box and class, then the distractor's.
    (Keras ``fit`` would read a third element as sample weights: use these for metrics.)

    ``dataset``: a name, or the run's resolved ``DatasetPreset`` (``image_size`` then
    overrides its size, if given). ``split``: "train" (less the validation images held
    out of it), "validation", "test", "train_all" (``sfocus_tf.data.splits``) or any
    split name of the source; default "train" or "test". ``training`` turns on
    shuffling and augmentation and defaults ``drop_remainder`` to True (one batch shape,
    so XLA compiles once); evaluation keeps every example unless asked otherwise.
    ``data_dir``: the tfds data dir for tfds datasets (``manual_dir`` for ImageNet's
    manual files), the folder of the .gz files for fashion_mnist (default
    /usr/share/datasets/fashion-mnist), the root for image folders. ``repeat`` makes the
    dataset endless (then give Keras ``steps_per_epoch``). ``train_examples``: of the
    "train" split only a class-balanced subset of that many (``splits.subset_mask``).
    """
    preset = _preset_of(dataset, image_size=image_size, data_dir=data_dir)
    if with_boxes and not preset.has_boxes:
        raise ValueError(f"{preset.name} has no bounding boxes")
    shuffle = training if shuffle is None else shuffle
    folder_options = dict(test_fraction=test_fraction, train_per_class=train_per_class,
                          skip_bad_images=skip_bad_images)
    split = _checked_split(split or preset.default_split(training), train_examples)
    source_split, part = preset.resolve_split(split)
    keep = _kept(preset, source_split, part, train_examples, data_dir=data_dir,
                 folder_options=folder_options)
    # A carve-out is a set of positions in file order: read unshuffled, shuffle after.
    dataset = _source(preset, source_split, data_dir=data_dir, manual_dir=manual_dir,
                      shuffle=shuffle and keep is None, seed=seed, with_boxes=with_boxes,
                      download=download, folder_options=folder_options)
    if keep is not None:
        if part == "holdout" and not keep.any():
            raise ValueError(f"{preset.name}: no class of its {source_split!r} split has the two "
                             "examples a validation carve-out needs; train with "
                             "full_training_set=True (--full_training_set)")
        dataset = _part_of(dataset, keep)
    if preset.cache if cache is None else cache:
        dataset = dataset.cache()
    if shuffle:
        dataset = dataset.shuffle(preset.shuffle_buffer, seed=seed,
                                  reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    batched = (_transform_then_batch if preset.augmentation == RESIZED_CROP_FLIP
               else _batch_then_transform)
    dataset = batched(dataset, preset, training=training, seed=seed,
                      batch_size=batch_size,
                      drop_remainder=training if drop_remainder is None else drop_remainder)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _checked_split(split: str, train_examples: int | None) -> str:
    if train_examples is not None and split != "train":
        raise ValueError(f"train_examples subsets the 'train' split only, not {split!r}")
    return split


def num_examples(dataset: str | DatasetPreset, split: str | None = None, *, data_dir: str | None = None,
                 test_fraction: float = 0.2, train_per_class: int | None = None,
                 training: bool = True, train_examples: int | None = None) -> int | None:
    """Examples in a split (None if unknown without the data), e.g. for steps per epoch;
    ``train_examples`` as in ``load``."""
    preset = _preset_of(dataset, data_dir=data_dir)  # an image folder's classes: from disk
    split = _checked_split(split or preset.default_split(training), train_examples)
    split, part = preset.resolve_split(split)
    if preset.source == "tfds":
        count = tfds_sources.count_examples(preset, split, data_dir)
    elif preset.source in FASHION_MNIST_SOURCES:  # one example per garment
        count = fashion_mnist.count_examples(split, data_dir)
    else:
        count = image_folder.count_examples(data_dir, split, test_fraction=test_fraction,
                                            train_per_class=train_per_class)
    if count is None or (part is None and train_examples is None):
        return count
    try:  # the labels give the exact size (a small class gives fewer)
        return int(_kept(preset, split, part, train_examples, data_dir=data_dir,
                         folder_options=dict(test_fraction=test_fraction,
                                             train_per_class=train_per_class)).sum())
    except (OSError, ValueError, ImportError, AssertionError):  # no data here: nominal size
        return splits.part_size(count, preset.num_classes, preset.multi_label, part,
                                train_examples)


def class_names(dataset: str | DatasetPreset, *, data_dir: str | None = None) -> list[str]:
    """Human-readable class names, index = label id."""
    preset = _preset_of(dataset)
    if preset.source == "tfds":
        return tfds_sources.class_names(preset, data_dir)
    if preset.source in FASHION_MNIST_SOURCES:
        return list(fashion_mnist.CLASS_NAMES)
    return image_folder.list_classes(data_dir)


def first_examples(dataset: tf.data.Dataset, count: int, with_boxes: bool = False):
    """The first ``count`` (images, labels) of a batched dataset, as NumPy arrays
    (e.g. a fixed set of test images for overlay grids); with ``with_boxes``, of a
    dataset with boxes, (images, labels, boxes) (boxes as the dataset gives them)."""
    batch = next(iter(dataset.unbatch().batch(count).take(1)))
    numpy = tf.nest.map_structure(lambda tensor: tensor.numpy(), tuple(batch))
    return numpy[:3] if with_boxes else numpy[:2]
