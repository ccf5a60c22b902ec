"""Training recipes: named functions that return a ``TrainConfig``.

    config = recipes.get("fashion_mnist_demo")          # sfocus-train --config=...
    config = recipes.get("cifar100").replace(epochs=10)  # flags override fields

A recipe says how to train (backbone, schedule, epochs, batch, weight decay, SFOCUS
switches); what the data is (size, classes, image size, boxes, multi-label) stays in
``sfocus_tf.data.presets``. Schedule fields a recipe leaves at None take the
dataset's default schedule (``sfocus_tf.configs.schedules``) in ``TrainConfig.resolve()``.
Adding a recipe is one decorated function.
"""

from __future__ import annotations

from typing import Callable

from sfocus_tf.configs.train_config import TrainConfig

_RECIPES: dict[str, Callable[[], TrainConfig]] = {}
DEFAULT = "default"


def recipe(function: Callable[[], TrainConfig]) -> Callable[[], TrainConfig]:
    """Registers ``function`` under its name."""
    _RECIPES[function.__name__] = function
    return function


def names() -> list[str]:
    return sorted(_RECIPES)


def get(name: str) -> TrainConfig:
    """The config of recipe ``name``; ValueError listing the names otherwise."""
    if name not in _RECIPES:
        raise ValueError(f"unknown recipe {name!r}; valid: {', '.join(names())}")
    return _RECIPES[name]()


@recipe
def default() -> TrainConfig:
    """TrainConfig's defaults: ResNet-20 on Fashion-MNIST, the dataset's schedule."""
    return TrainConfig()


@recipe
def fashion_mnist_cpu() -> TrainConfig:
    """Sized for 2 CPU cores: < 2 h for 3 seeds of baseline and SFOCUS."""
    return TrainConfig(dataset="fashion_mnist", model="resnet8", epochs=4,
                       learning_rate=0.1, schedule="cosine")


@recipe
def fashion_mnist_demo() -> TrainConfig:
    """The README's demo (``make demo``): SFOCUS with the default switches."""
    return fashion_mnist_cpu()


@recipe
def fashion_mnist_study() -> TrainConfig:
    """One pass over the training set (~2 min a run on 2 cores), for grids of readings."""
    return fashion_mnist_cpu().replace(epochs=2, steps_per_epoch=234)


@recipe
def fashion_mnist_confirm() -> TrainConfig:
    """The default study's confirmatory stage (docs/default_study.md): ResNet-8,
    16 epochs of 234 steps of 128 (~7 passes over the 55,000 training images), a
    cosine schedule. Sized on the baseline (seed 0, studies/fashion_mnist_sizing): its
    validation accuracy at the end of 8, 12 and 16 such epochs is 90.90 %, 91.54 %,
    92.16 %; 16 is the shortest within 0.3 points of the longest tried (10 min of
    baseline training on 2 busy cores)."""
    return fashion_mnist_study().replace(epochs=16)


@recipe
def fashion_mnist_cluttered_study() -> TrainConfig:
    """Localisation: 56x56 canvases, one pass like fashion_mnist_study (4x the pixels:
    ~0.4 s a step on 2 cores)."""
    return fashion_mnist_study().replace(dataset="fashion_mnist_cluttered")


@recipe
def fashion_mnist_duo_study() -> TrainConfig:
    """The labelled garment and a smaller one of another class on 40x40 canvases
    (data/duo.py), 12 epochs of 234 steps (~5 passes).

    Measured on 2 busy CPU cores, medians of 2 x 25 interleaved steps: a duo step
    takes 454 ms with SFOCUS, 360 ms for the baseline, against 234 ms and 159 ms
    for a fashion_mnist_study step: 1.9x and 2.3x (2.0x the pixels). The baseline's
    validation accuracy at the end of a cosine schedule of 8, 12 and 16 such epochs:
    86.4 %, 88.4 %, 88.7 %: 12 is where more epochs stop paying (27 min of baseline
    training there)."""
    return fashion_mnist_cpu().replace(dataset="fashion_mnist_duo", epochs=12,
                                       steps_per_epoch=234)


@recipe
def fashion_mnist_scarce() -> TrainConfig:
    """600 training images per class (``train_examples``; validation and test as
    usual): 60 epochs of 46 steps, for what SFOCUS does when data is scarce.

    Measured (baseline): training accuracy 80 % after 4 epochs, 90 % after 22, 95 %
    after 50, 95.9 % at the end (96.0 % on the unaugmented subset), validation
    90.2 %; 10x less weight decay ended lower (95.1 %). ResNet-8 under pad-crop-flip
    does not reach 100 % on these images within this schedule."""
    return fashion_mnist_cpu().replace(train_examples=6_000, epochs=60)


# The paper's settings: the datasets' schedules, with its backbones.
@recipe
def cifar100() -> TrainConfig:
    return TrainConfig(dataset="cifar100", model="resnet18_cifar")


@recipe
def caltech256() -> TrainConfig:
    return TrainConfig(dataset="caltech256", model="resnet50")


@recipe
def cub200() -> TrainConfig:
    return TrainConfig(dataset="caltech_birds2011", model="resnet50")


@recipe
def imagenet() -> TrainConfig:
    return TrainConfig(dataset="imagenet2012", model="resnet50")


@recipe
def voc2012() -> TrainConfig:
    return TrainConfig(dataset="voc/2012", model="resnet50")


# From ImageNet weights, as users of the ImageNet-size datasets expect. DenseNet-121
# because Keras' weights for it expect what the pipeline gives (RGB scaled by the
# ImageNet mean and std); Keras' ResNet50 expects Caffe's BGR inputs instead.
def _from_imagenet(config: TrainConfig) -> TrainConfig:
    return config.replace(model="application", application="DenseNet121",
                          inner_layer="pool4_relu", weights="imagenet")


@recipe
def cub200_pretrained() -> TrainConfig:
    return _from_imagenet(cub200())


@recipe
def voc2012_pretrained() -> TrainConfig:
    return _from_imagenet(voc2012())


@recipe
def caltech256_pretrained() -> TrainConfig:
    return _from_imagenet(caltech256())
