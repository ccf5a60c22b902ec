"""Datasets stored as ``root/<class_name>/<image>`` (Caltech-256, users' own data).

Class ids follow the sorted class-folder names. If ``root/train`` and ``root/test`` exist
they are the splits; otherwise each class is split deterministically: files are ordered by
a hash of their name, so the split does not depend on the training seed or on the machine.
"""

from __future__ import annotations

import os
import zlib

import numpy as np
import tensorflow as tf

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
SPLITS = ("train", "test")


def _subfolders(folder: str) -> list[str]:
    return sorted(entry.name for entry in os.scandir(folder)
                  if entry.is_dir() and not entry.name.startswith("."))


def _image_files(folder: str) -> list[str]:
    return sorted(entry.path for entry in os.scandir(folder) if entry.is_file()
                  and entry.name.lower().endswith(IMAGE_EXTENSIONS))


def has_split_folders(root: str) -> bool:
    return all(os.path.isdir(os.path.join(root, split)) for split in SPLITS)


def list_classes(root: str) -> list[str]:
    """Sorted class names; a class's id is its index here."""
    if not root or not os.path.isdir(root):
        raise FileNotFoundError(f"image folder {root!r} does not exist")
    class_root = os.path.join(root, "train") if has_split_folders(root) else root
    classes = _subfolders(class_root)
    if not classes:
        raise ValueError(f"{class_root} has no class folders (expected <class_name>/*.jpg)")
    return classes


def _hash_order(path: str) -> tuple[int, str]:
    name = os.path.basename(path)
    return zlib.crc32(name.encode("utf-8")), name


def _split_class(files: list[str], split: str, test_fraction: float,
                 train_per_class: int | None) -> list[str]:
    files = sorted(files, key=_hash_order)
    if train_per_class is not None:
        num_train = min(train_per_class, len(files))
    else:
        num_train = len(files) - int(round(len(files) * test_fraction))
    return files[:num_train] if split == "train" else files[num_train:]


def list_split(root: str, split: str, *, test_fraction: float = 0.2,
               train_per_class: int | None = None) -> tuple[list[str], list[int]]:
    """(file paths, class ids) of one split.

    Without train/test folders, ``train_per_class`` (e.g. 60 for the usual Caltech-256
    protocol) takes that many training images per class, the rest being test; otherwise
    ``test_fraction`` of each class is test.
    """
    if split not in SPLITS:
        raise ValueError(f"image folders have splits {SPLITS}, got {split!r}")
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test_fraction must be in [0, 1], got {test_fraction}")
    classes = list_classes(root)
    split_folder = has_split_folders(root)
    paths, labels = [], []
    for class_id, class_name in enumerate(classes):
        if split_folder:
            folder = os.path.join(root, split, class_name)
            files = _image_files(folder) if os.path.isdir(folder) else []
        else:
            files = _split_class(_image_files(os.path.join(root, class_name)), split,
                                 test_fraction, train_per_class)
        paths += files
        labels += [class_id] * len(files)
    if not paths:
        raise ValueError(f"no images with extensions {IMAGE_EXTENSIONS} for split "
                         f"{split!r} under {root}")
    return paths, labels


def count_examples(root: str, split: str, **split_options) -> int:
    return len(list_split(root, split, **split_options)[0])


def _read_image(path, channels: int):
    data = tf.io.read_file(path)
    image = tf.io.decode_image(data, channels=channels, expand_animations=False)
    return tf.ensure_shape(image, [None, None, channels])


def make_dataset(root: str, split: str, *, channels: int = 3, shuffle: bool = False,
                 seed: int | None = None, **split_options) -> tf.data.Dataset:
    """Examples ``{"image": uint8 [H, W, channels], "label": int32}``.

    Shuffling the whole file list here is cheap (paths only) and makes the later,
    decoded-image shuffle buffer's small size harmless.
    """
    paths, labels = list_split(root, split, **split_options)
    dataset = tf.data.Dataset.from_tensor_slices(
        (np.array(paths), np.array(labels, dtype=np.int32)))
    if shuffle:
        dataset = dataset.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    return dataset.map(lambda path, label: {"image": _read_image(path, channels),
                                            "label": label},
                       num_parallel_calls=tf.data.AUTOTUNE)
