"""VGG with BatchNorm (conv-BN-ReLU), the convolutional part only.

Registered builders: ``vgg16`` ([2, 2, 3, 3, 3] convs) and ``vgg19``
([2, 2, 4, 4, 4]), widths 64/128/256/512/512, 3x3 convs with bias (as
torchvision's ``vgg*_bn``), 2x2/2 max-pools between blocks. There are no FC
layers: the SFOCUS head is GAP + dense on ``last``.

``inner`` is the output of block 4 before its max-pool (stride 8), ``last``
that of block 5 before its max-pool (stride 16; that pool is not built).
Layer names: ``block{i}_conv{j}_conv`` / ``_bn`` / ``_relu``, ``block{i}_pool``.
Inputs need at least 16x16 pixels.
"""

from __future__ import annotations

import keras

from keras_models.backbone import Backbone
from keras_models.blocks import Builder, check_stages, policy_name
from keras_models.registry import register


@keras.saving.register_keras_serializable(package="keras_models")
class VGG(Backbone):
    """VGG-BN features; ``inner`` / ``last`` are the last two blocks' outputs.

    Args:
        input_shape: ``(height, width, channels)``.
        num_classes: size of the head this backbone is meant for.
        convs_per_block: 3x3 convs in each block.
        block_widths: filters in each block.
        weight_decay: see ``blocks.kernel_regularizer``.
        dtype: layer dtype or policy name; None = global policy.
    """

    def __init__(self, input_shape, num_classes=None, convs_per_block=(2, 2, 3, 3, 3),
                 block_widths=(64, 128, 256, 512, 512), weight_decay=0.0, dtype=None,
                 **kwargs):
        check_stages(convs_per_block, block_widths, ("convs_per_block", "block_widths"))
        kwargs.setdefault("name", "vgg")
        b = Builder(weight_decay, dtype, conv_bias=True)
        images = b.input(input_shape)
        x, outputs = images, []
        for i, (n, width) in enumerate(zip(convs_per_block, block_widths), start=1):
            if i > 1:
                x = b.max_pool(x, 2, 2, f"block{i - 1}_pool")
            for j in range(1, n + 1):
                x = b.conv_bn(x, width, kernel_size=3, strides=1, name=f"block{i}_conv{j}")
            outputs.append(x)
        super().__init__(images, outputs[-2], outputs[-1], num_classes=num_classes, **kwargs)
        self.convs_per_block = tuple(int(n) for n in convs_per_block)
        self.block_widths = tuple(int(w) for w in block_widths)
        self.weight_decay = float(weight_decay)
        self._backbone_dtype = policy_name(dtype)

    def get_config(self):
        return {**super().get_config(), "input_shape": self.image_shape,
                "convs_per_block": self.convs_per_block,
                "block_widths": self.block_widths, "weight_decay": self.weight_decay,
                "dtype": self._backbone_dtype}


@register("vgg16")
def vgg16(input_shape, num_classes=None, **kwargs):
    kwargs = {"convs_per_block": (2, 2, 3, 3, 3), "name": "vgg16", **kwargs}
    return VGG(input_shape, num_classes, **kwargs)


@register("vgg19")
def vgg19(input_shape, num_classes=None, **kwargs):
    kwargs = {"convs_per_block": (2, 2, 4, 4, 4), "name": "vgg19", **kwargs}
    return VGG(input_shape, num_classes, **kwargs)
