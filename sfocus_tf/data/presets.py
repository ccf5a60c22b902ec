"""What each dataset is: source, classes, image size, statistics, boxes, labels.

How to train on it (schedule, epochs, batch) is a recipe: ``sfocus_tf.configs.recipes``."""

from __future__ import annotations

import dataclasses
from typing import Sequence

from sfocus_tf.data import splits

PAD_CROP_FLIP = "pad_crop_flip"  # small images: pad, random crop back, horizontal flip
RESIZED_CROP_FLIP = "random_resized_crop_flip"  # ImageNet-like: Inception crop, flip
NO_AUGMENTATION = "none"
AUGMENTATIONS = (PAD_CROP_FLIP, RESIZED_CROP_FLIP, NO_AUGMENTATION)

SOURCES = ("tfds", "fashion_mnist", "fashion_mnist_cluttered", "fashion_mnist_duo",
           "image_folder")

# Per-channel statistics of the training sets, on the [0, 1] scale.
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.2860,), (0.3530,)
CLUTTERED_MEAN, CLUTTERED_STD = (0.1257,), (0.2766,)
DUO_MEAN, DUO_STD = (0.1436,), (0.2762,)  # of its "train" split (less the validation)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class DatasetPreset:
    """Everything the input pipeline needs to know about one dataset.

    ``image_size`` is the size the model sees, in training and evaluation alike. For
    ``RESIZED_CROP_FLIP`` evaluation resizes so the image covers ``image_size /
    eval_crop_fraction`` (256 for 224) and takes the centre crop.
    """

    name: str
    source: str
    num_classes: int
    image_size: tuple[int, int, int]
    augmentation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    tfds_name: str | None = None
    train_split: str = "train"
    test_split: str = "test"
    # The dataset's own validation split where it has one besides its test split; else
    # validation is carved out of the training split (``sfocus_tf.data.splits``).
    validation_split: str | None = None
    multi_label: bool = False
    has_boxes: bool = False
    pad: int = 4
    eval_crop_fraction: float = 0.875
    cache: bool = False  # cache decoded examples in memory; only where they fit
    shuffle_buffer: int = 10_000
    split_sizes: tuple[tuple[str, int], ...] = ()  # known sizes, no data needed

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")
        if self.augmentation not in AUGMENTATIONS:
            raise ValueError(f"augmentation must be one of {AUGMENTATIONS}, "
                             f"got {self.augmentation!r}")
        if self.has_boxes and self.augmentation == PAD_CROP_FLIP:
            raise ValueError(f"{self.name}: boxes need the {RESIZED_CROP_FLIP} augmentation "
                             f"(the only one that moves boxes with the image) or "
                             f"{NO_AUGMENTATION!r}")
        channels = self.image_size[-1]
        if len(self.mean) != channels or len(self.std) != channels:
            raise ValueError(f"{self.name}: mean and std need {channels} values")

    @property
    def eval_resize(self) -> int:
        """Shorter image side before the evaluation centre crop (resized-crop presets)."""
        return int(round(max(self.image_size[:2]) / self.eval_crop_fraction))

    def default_split(self, training: bool) -> str:
        """The split name (``sfocus_tf.data.splits``) training or evaluation reads."""
        return "train" if training else "test"

    def resolve_split(self, split: str) -> tuple[str, str | None]:
        """``(the dataset's own split to read, which part of it)``: ``splits.resolve``."""
        return splits.resolve(split, train_split=self.train_split, test_split=self.test_split,
                              validation_split=self.validation_split)

    def split_size(self, split: str) -> int | None:
        """Examples in a split, from the known sizes (no data read); None if unknown."""
        source, part = self.resolve_split(split)
        size = dict(self.split_sizes).get(source)
        if size is None:
            return size
        return splits.part_size(size, self.num_classes, self.multi_label, part)

    def with_image_size(self, image_size: int | Sequence[int] | None) -> DatasetPreset:
        """The same preset at another size: an int (square), (H, W) or (H, W, C)."""
        if image_size is None:
            return self
        channels = self.image_size[-1]
        if isinstance(image_size, int):
            size = (image_size, image_size, channels)
        elif len(image_size) == 2:
            size = (int(image_size[0]), int(image_size[1]), channels)
        else:
            size = tuple(int(v) for v in image_size)
        if size[-1] != channels or min(size) < 1:
            raise ValueError(f"{self.name}: bad image_size {image_size!r} "
                             f"(the data has {channels} channels)")
        return dataclasses.replace(self, image_size=size)


def _small(name, num_classes, mean, std, **kwargs):
    return DatasetPreset(name=name, num_classes=num_classes, augmentation=PAD_CROP_FLIP,
                         mean=mean, std=std, **kwargs)


def _placed(name, side, mean, std):
    """Fashion-MNIST garments placed on a canvas, one example per garment: the placement
    is the variation, so no augmentation, and the boxes stay exact."""
    return DatasetPreset(name=name, source=name, num_classes=10, image_size=(side, side, 1),
                         augmentation=NO_AUGMENTATION, mean=mean, std=std, has_boxes=True,
                         split_sizes=(("train", 60_000), ("test", 10_000)))


def _imagenet_like(name, num_classes, **kwargs):
    defaults = dict(image_size=(224, 224, 3), augmentation=RESIZED_CROP_FLIP,
                    mean=IMAGENET_MEAN, std=IMAGENET_STD,
                    shuffle_buffer=1024)  # decoded full-size images: keep the buffer small
    defaults.update(kwargs)
    return DatasetPreset(name=name, num_classes=num_classes, **defaults)


_PRESETS = (
    _small("cifar10", 10, CIFAR10_MEAN, CIFAR10_STD, source="tfds", tfds_name="cifar10",
           image_size=(32, 32, 3), cache=True,
           split_sizes=(("train", 50_000), ("test", 10_000))),
    _small("cifar100", 100, CIFAR100_MEAN, CIFAR100_STD, source="tfds", tfds_name="cifar100",
           image_size=(32, 32, 3), cache=True,
           split_sizes=(("train", 50_000), ("test", 10_000))),
    # Already in memory as one array, so no cache; pad 2 suits 28 px digits-sized objects.
    _small("fashion_mnist", 10, FASHION_MNIST_MEAN, FASHION_MNIST_STD, source="fashion_mnist",
           image_size=(28, 28, 1), pad=2, split_sizes=(("train", 60_000), ("test", 10_000))),
    # Garments placed at random on a 56x56 canvas with clutter (data/cluttered.py), or
    # with a smaller garment of another class on a 40x40 one (data/duo.py).
    _placed("fashion_mnist_cluttered", 56, CLUTTERED_MEAN, CLUTTERED_STD),
    _placed("fashion_mnist_duo", 40, DUO_MEAN, DUO_STD),
    _imagenet_like("caltech101", 102, source="tfds", tfds_name="caltech101",
                   split_sizes=(("train", 3_060), ("test", 6_084))),
    _imagenet_like("caltech_birds2011", 200, source="tfds", tfds_name="caltech_birds2011",
                   has_boxes=True, split_sizes=(("train", 5_994), ("test", 5_794))),
    # VOC's tfds "test" split has no labels: evaluate on "validation".
    _imagenet_like("voc/2012", 20, source="tfds", tfds_name="voc/2012", multi_label=True,
                   has_boxes=True, test_split="validation",
                   split_sizes=(("train", 5_717), ("validation", 5_823), ("test", 10_991))),
    _imagenet_like("imagenet2012", 1000, source="tfds", tfds_name="imagenet2012",
                   test_split="validation", split_sizes=(("train", 1_281_167), ("validation", 50_000))),
    # Image folders: num_classes comes from the folder (get_preset(..., data_dir=root)).
    _imagenet_like("caltech256", 257, source="image_folder"),
    _imagenet_like("image_folder", 0, source="image_folder"),
)
PRESETS = {preset.name: preset for preset in _PRESETS}


def names() -> list[str]:
    """Every dataset name that ``load`` and ``get_preset`` accept."""
    return sorted(PRESETS)


def lookup(name: str) -> DatasetPreset:
    """The stored preset, with no overrides; ValueError listing the names otherwise."""
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(names())}") \
            from None
