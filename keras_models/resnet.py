"""ImageNet ResNets (He et al. 2016, Table 1): 7x7/2 stem, 3x3/2 max-pool,
four stages of widths 64/128/256/512.

Registered builders: ``resnet18`` (basic blocks, [2, 2, 2, 2]) and
``resnet50`` (bottleneck blocks with 4x expansion, [3, 4, 6, 3], v1.5 stride
placement). Convolutions have no bias and projection shortcuts are 1x1 conv +
BN (option B), so parameter counts equal torchvision's: 11,689,512 and
25,557,032 with a 1000-class head.

``inner`` is the stage-3 output (stride 16), ``last`` the stage-4 output
(stride 32, after its final ReLU). Layer names follow ``resnet_cifar``
(``stage4_block2_out`` etc.) plus ``stem_conv`` and ``stem_pool``.
"""

from __future__ import annotations

import keras

from keras_models.backbone import Backbone
from keras_models.blocks import (Builder, check_choice, check_stages, class_stage_options,
                                 policy_name)
from keras_models.registry import register


@keras.saving.register_keras_serializable(package="keras_models")
class ResNet(Backbone):
    """An ImageNet-style ResNet.

    Args:
        input_shape: ``(height, width, channels)``; 32x32 works (F_last 1x1).
        num_classes: size of the head this backbone is meant for.
        block: ``"basic"`` or ``"bottleneck"``.
        blocks_per_stage: blocks per stage.
        stage_widths: bottleneck / basic widths per stage; the stem has
            ``stage_widths[0]`` filters.
        weight_decay: see ``blocks.kernel_regularizer``.
        dtype: layer dtype or policy name; None = global policy.
        class_block_width: None, or the width of the per-class last stages that
            replace stage 4 (the "++" variant, ``class_blocks.py``).
    """

    def __init__(self, input_shape, num_classes=None, block="basic",
                 blocks_per_stage=(2, 2, 2, 2), stage_widths=(64, 128, 256, 512),
                 weight_decay=0.0, dtype=None, class_block_width=None, **kwargs):
        check_choice("block", block, {"basic", "bottleneck"})
        check_stages(stage_widths, blocks_per_stage)
        class_blocks = class_stage_options(num_classes, class_block_width)
        kwargs.setdefault("name", "resnet")
        b = Builder(weight_decay, dtype)
        images = b.input(input_shape)
        x = b.conv_bn(images, stage_widths[0], kernel_size=7, strides=2, name="stem")
        # Zeros pad like PyTorch's -inf here: the input is a ReLU output (>= 0).
        x = b.max_pool(b.pad(x, 1, "stem_pool_pad"), 3, 2, "stem_pool")
        inner, last = b.resnet_features(x, stage_widths, blocks_per_stage, block, "B",
                                        class_blocks)
        super().__init__(images, inner, last, num_classes=num_classes, **kwargs)
        self.block = block
        self.blocks_per_stage = tuple(int(n) for n in blocks_per_stage)
        self.stage_widths = tuple(int(w) for w in stage_widths)
        self.class_block_width = class_block_width
        self.weight_decay = float(weight_decay)
        self._backbone_dtype = policy_name(dtype)

    def get_config(self):
        return {**super().get_config(), "input_shape": self.image_shape,
                "block": self.block, "blocks_per_stage": self.blocks_per_stage,
                "stage_widths": self.stage_widths, "weight_decay": self.weight_decay,
                "dtype": self._backbone_dtype, "class_block_width": self.class_block_width}


@register("resnet18")
def resnet18(input_shape, num_classes=None, **kwargs):
    kwargs = {"block": "basic", "blocks_per_stage": (2, 2, 2, 2), "name": "resnet18",
              **kwargs}
    return ResNet(input_shape, num_classes, **kwargs)


@register("resnet50")
def resnet50(input_shape, num_classes=None, **kwargs):
    kwargs = {"block": "bottleneck", "blocks_per_stage": (3, 4, 6, 3),
              "name": "resnet50", **kwargs}
    return ResNet(input_shape, num_classes, **kwargs)
