"""Datasets stored as ``root/<class_name>/<image>`` (Caltech-256, users' own data).

Class ids follow the sorted class-folder names. If ``root/train`` and ``root/test`` exist
they are the splits; otherwise each class is split deterministically: files are ordered by
a hash of their name, so the split does not depend on the training seed or on the machine.

Every file of a split is decoded once, in parallel, before the first batch
(``find_unreadable``): a corrupt or truncated image fails the run at its start with the
list of bad files, not days later with a decoder error that names no file; with
``skip_bad_images`` they are left out and counted instead.
"""

from __future__ import annotations

import os
import re
import sys
import zlib

import numpy as np
import tensorflow as tf

# Every format tf.io.decode_image reads (TF 2.21: JPEG, PNG, BMP, GIF, WebP, JPEG XL).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".jxl")
SHOWN_BAD_FILES = 5  # bad files named in the error; the rest are counted
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


# (path, size, mtime, channels) of files already decoded without error in this process:
# the train, test and overlay datasets of one run check each file once.
_READABLE: set = set()


def _signature(path: str, channels: int):
    stat = os.stat(path)
    return path, stat.st_size, stat.st_mtime_ns, channels


def _decode_error(path: str, channels: int) -> str:
    """Why ``path`` does not decode, in one line (the decoder's words, without TF's
    op and function names)."""
    try:
        _read_image(tf.constant(path), channels)
    except (tf.errors.OpError, OSError) as error:
        text = re.sub(r"\{\{[^}]*\}\}|\[Op:\w+\](\s*name:\s*\S*)?", "",
                      getattr(error, "message", str(error)))
        return " ".join(text.split()).rstrip(".") or type(error).__name__
    return "decoded on a second try (was the file being written?)"


def find_unreadable(paths: list[str], channels: int) -> list[tuple[str, str]]:
    """``(path, reason)`` of each file that ``make_dataset`` could not decode.

    Decodes every file in parallel with the pipeline's own decoder (a header check
    would miss truncated files); the readable ones are those that come out of a
    tf.data map with errors dropped, so the bad ones are known by name.
    """
    unchecked = [p for p in paths if not os.path.isfile(p) or _signature(p, channels)
                 not in _READABLE]
    if not unchecked:
        return []
    decoded = (tf.data.Dataset.from_tensor_slices(unchecked)
               .map(lambda path: (path, tf.shape(_read_image(path, channels))),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
               .ignore_errors())
    readable = {path.decode() for path, _ in decoded.as_numpy_iterator()}
    _READABLE.update(_signature(p, channels) for p in readable)
    return [(p, _decode_error(p, channels)) for p in unchecked if p not in readable]


def _without_unreadable(root, split, paths, labels, *, channels, skip_bad_images):
    """``paths, labels`` without the files that do not decode; a ValueError naming
    them unless ``skip_bad_images`` (then a line on stderr says how many went)."""
    bad = find_unreadable(paths, channels)
    if not bad:
        return paths, labels
    shown = "; ".join(f"{os.path.relpath(p, root)}: {reason}"
                      for p, reason in bad[:SHOWN_BAD_FILES])
    more = f" (and {len(bad) - SHOWN_BAD_FILES} more)" if len(bad) > SHOWN_BAD_FILES else ""
    if not skip_bad_images:
        raise ValueError(f"{len(bad)} of {len(paths)} images in {root} ({split} split) cannot "
                         f"be decoded: {shown}{more}. Fix or remove them, or skip them "
                         f"with --skip_bad_images")
    print(f"{root} ({split} split): skipped {len(bad)} of {len(paths)} images that cannot "
          f"be decoded: {shown}{more}", file=sys.stderr)
    bad_paths = {p for p, _ in bad}
    kept = [(p, label) for p, label in zip(paths, labels) if p not in bad_paths]
    if not kept:
        raise ValueError(f"no readable images for split {split!r} under {root}")
    return [p for p, _ in kept], [label for _, label in kept]


def make_dataset(root: str, split: str, *, channels: int = 3, shuffle: bool = False,
                 seed: int | None = None, skip_bad_images: bool = False,
                 **split_options) -> tf.data.Dataset:
    """Examples ``{"image": uint8 [H, W, channels], "label": int32}``.

    Every file is decoded once first (``find_unreadable``): files that do not decode
    raise a ValueError naming them, or with ``skip_bad_images`` are left out.
    Shuffling the whole file list here is cheap (paths only) and makes the later,
    decoded-image shuffle buffer's small size harmless.
    """
    paths, labels = list_split(root, split, **split_options)
    paths, labels = _without_unreadable(root, split, paths, labels, channels=channels,
                                        skip_bad_images=skip_bad_images)
    dataset = tf.data.Dataset.from_tensor_slices(
        (np.array(paths), np.array(labels, dtype=np.int32)))
    if shuffle:
        dataset = dataset.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    return dataset.map(lambda path, label: {"image": _read_image(path, channels),
                                            "label": label},
                       num_parallel_calls=tf.data.AUTOTUNE)
