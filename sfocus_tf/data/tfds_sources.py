"""tensorflow-datasets sources, reduced to ``{"image", "label"[, "boxes"[, "box_labels"]]}``.

tensorflow_datasets is imported lazily: it is slow to import and the serving path and the
offline datasets do not need it.
"""

from __future__ import annotations

import tensorflow as tf

from sfocus_tf.data import boxes as boxes_lib
from sfocus_tf.data.presets import DatasetPreset

MAX_VOC_OBJECTS = 64  # VOC 2012 has at most 56 objects in an image
VOC_NUM_CLASSES = 20


def _wanted_features(tfds_name: str, with_boxes: bool) -> dict:
    """Only these are decoded: CUB's segmentation mask alone is a PNG decode per example."""
    if tfds_name == "voc/2012":
        objects = {"label": True, "bbox": True} if with_boxes else {"label": True}
        return {"image": True, "objects": objects}
    features = {"image": True, "label": True}
    if with_boxes:
        features["bbox"] = True
    return features


def _voc_example(example, with_boxes: bool):
    """Multi-hot float32 [20] from the objects' labels (all of them, difficult included)."""
    object_labels = example["objects"]["label"]
    # A sum, not a max: the max of an empty set (an image with no objects) is -inf.
    multi_hot = tf.reduce_sum(tf.one_hot(object_labels, VOC_NUM_CLASSES), axis=0)
    standard = {"image": example["image"], "label": tf.minimum(multi_hot, 1.0)}
    if with_boxes:
        boxes, box_labels = boxes_lib.pad_boxes(example["objects"]["bbox"], object_labels,
                                                MAX_VOC_OBJECTS)
        standard["boxes"], standard["box_labels"] = boxes, box_labels
    return standard


def _single_label_example(example, with_boxes: bool):
    standard = {"image": example["image"], "label": tf.cast(example["label"], tf.int32)}
    if with_boxes:
        standard["boxes"] = example["bbox"]
    return standard


def make_dataset(preset: DatasetPreset, split: str, *, data_dir: str | None = None,
                 manual_dir: str | None = None, shuffle_files: bool = False,
                 seed: int | None = None, with_boxes: bool = False,
                 download: bool = True) -> tf.data.Dataset:
    """Decoded examples of one split (tfds slicing such as "train[:10%]" works)."""
    import tensorflow_datasets as tfds

    download_config = tfds.download.DownloadConfig(manual_dir=manual_dir)
    dataset = tfds.load(
        preset.tfds_name, split=split, data_dir=data_dir, download=download,
        download_and_prepare_kwargs={"download_config": download_config},
        decoders=tfds.decode.PartialDecoding(_wanted_features(preset.tfds_name, with_boxes)),
        shuffle_files=shuffle_files, read_config=tfds.ReadConfig(shuffle_seed=seed))
    standardize = _voc_example if preset.multi_label else _single_label_example
    return dataset.map(lambda example: standardize(example, with_boxes),
                       num_parallel_calls=tf.data.AUTOTUNE)


def count_examples(preset: DatasetPreset, split: str, data_dir: str | None = None) -> int | None:
    """From the prepared dataset's metadata when present, else the preset's known sizes."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(preset.tfds_name, data_dir=data_dir)
        if builder.is_prepared():
            return int(builder.info.splits[split].num_examples)
    except (KeyError, ValueError, OSError):
        pass
    return dict(preset.split_sizes).get(split)


def labels(preset: DatasetPreset, split: str, data_dir: str | None = None):
    """Every label of a split in file order (class ids [N], or multi-hot [N, C] for VOC),
    read without decoding an image."""
    import numpy as np
    import tensorflow_datasets as tfds

    features = ({"objects": {"label": True}} if preset.tfds_name == "voc/2012"
                else {"label": True})
    dataset = tfds.load(preset.tfds_name, split=split, data_dir=data_dir, download=False,
                        decoders=tfds.decode.PartialDecoding(features), shuffle_files=False)
    standardize = _voc_example if preset.multi_label else _single_label_example
    dataset = dataset.map(lambda example: standardize(
        dict(example, image=tf.zeros([], tf.uint8)), False)["label"])
    return np.stack(list(tfds.as_numpy(dataset.batch(4096).unbatch())))


def class_names(preset: DatasetPreset, data_dir: str | None = None) -> list[str]:
    import tensorflow_datasets as tfds

    features = tfds.builder(preset.tfds_name, data_dir=data_dir).info.features
    label = features["objects"]["label"] if preset.multi_label else features["label"]
    return list(label.names)
