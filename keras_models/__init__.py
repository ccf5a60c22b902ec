"""Backbones that give the two SFOCUS feature maps ``{"inner", "last"}``.

``keras_models.get(name, input_shape, num_classes, **kwargs)`` builds one;
``keras_models.names()`` lists them. Importing this package registers the
CIFAR ResNets, ImageNet ResNets, VGG-BN and the ``keras.applications`` wrapper.
The ResNets take ``class_block_width`` for per-class last blocks (``class_blocks``).
"""

from keras_models.backbone import FEATURE_KEYS, Backbone
from keras_models.batch_norm import (BatchNorm, exact_batch_norm,
                                     synchronize_moving_statistics)
from keras_models.blocks import kernel_regularizer
from keras_models.class_blocks import ClassBlockDense, has_class_blocks
from keras_models.registry import get, names, register

# Imported for their registrations.
from keras_models.applications import ApplicationBackbone  # noqa: E402
from keras_models.resnet import ResNet  # noqa: E402
from keras_models.resnet_cifar import CifarResNet  # noqa: E402
from keras_models.vgg import VGG  # noqa: E402

__all__ = ["FEATURE_KEYS", "ApplicationBackbone", "Backbone", "BatchNorm", "CifarResNet",
           "ClassBlockDense", "ResNet", "VGG", "exact_batch_norm", "get", "has_class_blocks",
           "kernel_regularizer", "names", "register", "synchronize_moving_statistics"]
