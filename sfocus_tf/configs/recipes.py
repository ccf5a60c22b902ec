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
def fashion_mnist_cluttered_study() -> TrainConfig:
    """Localisation: 56x56 canvases, one pass like fashion_mnist_study (4x the pixels:
    ~0.4 s a step on 2 cores)."""
    return fashion_mnist_study().replace(dataset="fashion_mnist_cluttered")


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
