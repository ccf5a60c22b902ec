"""Which examples each split of a dataset holds: the validation images held out of training.

Model selection (early stopping, the tuner, every study rule) reads a validation split;
the test split is read once, at the end, for the report. A dataset whose own validation
split is not already its test split (CIFAR, Fashion-MNIST, CUB, VOC and ImageNet, whose
"validation" serves as their test) gets a carve-out of its training split instead:
``holdout_size`` examples, the same number from each class (at random for multi-label
data), drawn with a fixed seed that is not the training seed, so that every run and
every machine holds out the same images. Then

- ``"train"`` is the training split less the carve-out (what training reads),
- ``"validation"`` is the carve-out (or the dataset's own validation split),
- ``"train_all"`` is the whole training split, for final numbers (``full_training_set``).

``--train_examples=N`` (``subset_mask``) trains on a class-balanced part of ``"train"``
only, N // classes of each class, drawn with another fixed seed: validation and test
stay what they are, so that runs on less data are judged on the same images.
"""

from __future__ import annotations

import numpy as np

VALIDATION = "validation"
ALL_TRAINING = "train_all"
HOLDOUT_SEED = 20_261_207  # fixed: the held-out images are part of the benchmark
MAX_HOLDOUT = 5_000  # and at most a tenth of the training split
SUBSET_SEED = 20_260_121  # ``--train_examples``: fixed, and not the carve-out's seed


def holdout_size(train_size: int, num_classes: int, multi_label: bool = False) -> int:
    """How many training examples the carve-out holds: at most ``MAX_HOLDOUT`` and a
    tenth of ``train_size``, rounded down to a multiple of the class count (single-label
    data, so that each class gives the same number), and at least one per class (one
    example for multi-label data)."""
    size = min(MAX_HOLDOUT, train_size // 10)
    if multi_label:
        return max(1, size)
    return max(1, size // num_classes) * num_classes


def holdout_indices(labels: np.ndarray, num_classes: int, multi_label: bool = False,
                    seed: int = HOLDOUT_SEED) -> np.ndarray:
    """Sorted indices of the carve-out of a training split with ``labels``: a random
    ``holdout_size`` of them for multi-hot labels [N, C]; for class ids [N], the same
    number of each class, ``holdout_size // num_classes``, but never more than half of
    a class (a class of one example gives none)."""
    labels = np.asarray(labels)
    size = holdout_size(len(labels), num_classes, multi_label)
    return _balanced(labels, num_classes, multi_label, size, np.random.default_rng(seed),
                     lambda members: len(members) // 2)


def _balanced(labels, num_classes, multi_label, size, rng, most) -> np.ndarray:
    """Sorted indices: a random ``size`` of multi-hot ``labels``, else ``size //
    num_classes`` of each class but at most ``most(members)`` of it."""
    if multi_label:
        return np.sort(rng.permutation(len(labels))[:size])
    chosen = []
    for label in range(num_classes):
        members = np.flatnonzero(labels == label)
        take = min(size // num_classes, most(members))
        chosen.append(rng.permutation(members)[:take])
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def holdout_mask(labels: np.ndarray, num_classes: int, multi_label: bool = False
                 ) -> np.ndarray:
    """[N] booleans: True for the training examples held out for validation."""
    mask = np.zeros(len(labels), bool)
    mask[holdout_indices(labels, num_classes, multi_label)] = True
    return mask


def subset_size(train_examples: int, num_classes: int, multi_label: bool = False) -> int:
    """How many examples ``--train_examples`` keeps at most: a multiple of the class
    count for single-label data, so that each class gives the same number."""
    if multi_label:
        return train_examples
    if train_examples < num_classes:
        raise ValueError(f"train_examples={train_examples} is less than one example per "
                         f"class ({num_classes} classes)")
    return train_examples // num_classes * num_classes


def subset_mask(labels: np.ndarray, num_classes: int, train_examples: int,
                among: np.ndarray, multi_label: bool = False,
                seed: int = SUBSET_SEED) -> np.ndarray:
    """[N] booleans: a class-balanced ``subset_size`` of the examples where ``among``
    is True (all of a class that has fewer), drawn with the fixed ``SUBSET_SEED``."""
    members = np.flatnonzero(among)
    size = subset_size(train_examples, num_classes, multi_label)
    chosen = _balanced(np.asarray(labels)[members], num_classes, multi_label, size,
                       np.random.default_rng(seed), len)
    mask = np.zeros(len(labels), bool)
    mask[members[chosen]] = True
    return mask


def part_mask(labels: np.ndarray, num_classes: int, multi_label: bool, part: str | None,
              train_examples: int | None = None) -> np.ndarray:
    """[N] booleans: the examples of a split with ``labels`` that ``part`` (``resolve``)
    keeps, and of those only a ``subset_mask`` of ``train_examples`` where given."""
    keep = np.ones(len(labels), bool)
    if part is not None:
        held_out = holdout_mask(labels, num_classes, multi_label)
        keep = held_out if part == "holdout" else ~held_out
    if train_examples is not None:
        keep = subset_mask(labels, num_classes, train_examples, keep, multi_label)
    return keep


def part_size(size: int, num_classes: int, multi_label: bool, part: str | None,
              train_examples: int | None = None) -> int:
    """``part_mask``'s count from the split's ``size`` alone, classes assumed large
    enough: the nominal size where the labels are not at hand."""
    if part is not None:
        held_out = holdout_size(size, num_classes, multi_label)
        size = held_out if part == "holdout" else size - held_out
    if train_examples is not None:
        size = min(size, subset_size(train_examples, num_classes, multi_label))
    return size


def resolve(split: str, *, train_split: str, test_split: str,
            validation_split: str | None) -> tuple[str, str | None]:
    """``(split to read, part)`` for a split name: ``part`` is ``"holdout"`` (only the
    carve-out), ``"rest"`` (the split less the carve-out) or None (all of it).
    ``"train"``, ``"validation"``, ``"test"`` and ``"train_all"`` are this module's names;
    any other name (e.g. tfds slicing, "train[:10%]") is read as it is."""
    if split == "test":
        return test_split, None
    if split == VALIDATION:
        return (validation_split, None) if validation_split else (train_split, "holdout")
    if split == ALL_TRAINING:
        return train_split, None
    if split == "train":
        return train_split, None if validation_split else "rest"
    return split, None
