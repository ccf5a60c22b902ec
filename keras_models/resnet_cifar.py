"""CIFAR ResNets: a 3x3 stem at full resolution, no max-pool, basic blocks.

Registered builders:

* ``resnet20`` / ``resnet56`` / ``resnet110`` (and the smaller ``resnet8``,
  ``resnet14``, ``resnet32``, ``resnet44``): He et al. (2016) Sec. 4.2,
  3 stages of widths 16/32/64 with ``n = (depth - 2) / 6`` blocks each and
  option-A (parameter-free, zero-padding) shortcuts, as in the paper: with a
  10-class GAP + dense head ResNet-20 has 0.27 M parameters.
* ``resnet18_cifar``: the common "ResNet-18 for CIFAR" (4 stages of
  64/128/256/512, [2, 2, 2, 2] basic blocks, 3x3 stride-1 stem) with option-B
  (1x1 conv + BN) projection shortcuts; 11.17 M parameters with a 10-class head.
  This is the backbone of the public SFOCUS re-implementation.

``inner`` is the output of the second-to-last stage, ``last`` that of the last
stage (after its final ReLU). Layer names: ``stem_conv``,
``stage{i}_block{j}_{1,2}_conv``, ..., ``stage{i}_block{j}_out``.
"""

from __future__ import annotations

import keras

from keras_models.backbone import Backbone
from keras_models.blocks import (Builder, check_choice, check_stages, class_stage_options,
                                 policy_name)
from keras_models.registry import register


@keras.saving.register_keras_serializable(package="keras_models")
class CifarResNet(Backbone):
    """A basic-block ResNet with a 3x3 stride-1 stem and no max-pool.

    Args:
        input_shape: ``(height, width, channels)``.
        num_classes: size of the head this backbone is meant for.
        stage_widths: filters per stage; the stem has ``stage_widths[0]``.
        blocks_per_stage: basic blocks per stage (at least two stages).
        shortcut: ``"A"`` (subsample + zero-pad channels, no parameters) or
            ``"B"`` (1x1 conv + BN) where a block changes shape.
        weight_decay: see ``blocks.kernel_regularizer``.
        dtype: layer dtype or policy name (e.g. ``"float64"``); None = global.
        class_block_width: None, or the width of the per-class last stages that
            replace the last stage (the "++" variant, ``class_blocks.py``).
    """

    def __init__(self, input_shape, num_classes=None, stage_widths=(16, 32, 64),
                 blocks_per_stage=(3, 3, 3), shortcut="A", weight_decay=0.0,
                 dtype=None, class_block_width=None, **kwargs):
        check_choice("shortcut", shortcut, {"A", "B"})
        check_stages(stage_widths, blocks_per_stage)
        class_blocks = class_stage_options(num_classes, class_block_width)
        kwargs.setdefault("name", "cifar_resnet")
        b = Builder(weight_decay, dtype)
        images = b.input(input_shape)
        x = b.conv_bn(images, stage_widths[0], kernel_size=3, strides=1, name="stem")
        inner, last = b.resnet_features(x, stage_widths, blocks_per_stage, "basic", shortcut,
                                        class_blocks)
        super().__init__(images, inner, last, num_classes=num_classes, **kwargs)
        self.stage_widths = tuple(int(w) for w in stage_widths)
        self.blocks_per_stage = tuple(int(n) for n in blocks_per_stage)
        self.shortcut = shortcut
        self.class_block_width = class_block_width
        self.weight_decay = float(weight_decay)
        self._backbone_dtype = policy_name(dtype)

    def get_config(self):
        return {**super().get_config(), "input_shape": self.image_shape,
                "stage_widths": self.stage_widths,
                "blocks_per_stage": self.blocks_per_stage, "shortcut": self.shortcut,
                "weight_decay": self.weight_decay, "dtype": self._backbone_dtype,
                "class_block_width": self.class_block_width}


def _depth_builder(depth):
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n + 2; got {depth}")
    n = (depth - 2) // 6

    def build(input_shape, num_classes=None, **kwargs):
        kwargs = {"stage_widths": (16, 32, 64), "blocks_per_stage": (n, n, n),
                  "shortcut": "A", "name": f"resnet{depth}", **kwargs}
        return CifarResNet(input_shape, num_classes, **kwargs)

    build.__name__ = f"resnet{depth}"
    return build


for _depth in (8, 14, 20, 32, 44, 56, 110):
    register(f"resnet{_depth}")(_depth_builder(_depth))


@register("resnet18_cifar")
def resnet18_cifar(input_shape, num_classes=None, **kwargs):
    kwargs = {"stage_widths": (64, 128, 256, 512), "blocks_per_stage": (2, 2, 2, 2),
              "shortcut": "B", "name": "resnet18_cifar", **kwargs}
    return CifarResNet(input_shape, num_classes, **kwargs)
