"""Layers shared by the ResNet and VGG backbones.

Conventions for every backbone here: channels_last, He-normal kernels,
BatchNorm momentum 0.9 / epsilon 1e-5 (PyTorch's defaults, which the paper's
code used), explicit layer names (so F_in / F_last and Grad-CAM layers can be
found by name), and ``dtype`` passed to every layer so a float64 or
mixed-precision model is float64 / float16 throughout, not cast back to the
global policy at the first Add or ReLU. Strided convs and pools pad like PyTorch
(the same on every side, see ``Builder.pad``), so strided branch and shortcut
read the same input pixels.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from keras_models.batch_norm import BatchNorm
from keras_models.class_blocks import check_class_blocks

BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def kernel_regularizer(weight_decay: float):
    """An L2 penalty whose gradient is ``weight_decay * w``.

    That is the coupled decay of PyTorch's ``SGD(weight_decay=...)`` used by
    the paper; Keras' ``L2(l)`` adds ``l * sum(w**2)`` (gradient ``2*l*w``),
    hence the halving. Use it for the dense head too, so one number means the
    same thing everywhere. ``0`` gives no regulariser (and no entry in
    ``model.losses``).
    """
    return keras.regularizers.L2(weight_decay / 2.0) if weight_decay else None


def input_dtype(dtype):
    """The dtype of the model input for a layer ``dtype`` (name or policy).

    Mixed policies keep float32 inputs (the first layer casts), like Keras.
    """
    return None if dtype is None else keras.dtype_policies.get(dtype).variable_dtype


def policy_name(dtype):
    """A JSON-friendly form of ``dtype`` for get_config."""
    return dtype if dtype is None or isinstance(dtype, str) else dtype.name


@keras.saving.register_keras_serializable(package="keras_models")
class ZeroPadShortcut(layers.Layer):
    """Option-A shortcut of He et al. (2016), Sec. 4.2 (CIFAR): subsample by
    striding and zero-pad the new channels, so the shortcut has no parameters.
    The padding is split between both channel ends, as in the common PyTorch
    CIFAR ResNets."""

    def __init__(self, filters, strides=2, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.strides = int(strides)

    def call(self, x):
        s = self.strides
        x = x[:, ::s, ::s, :]
        extra = self.filters - x.shape[-1]
        return ops.pad(x, [[0, 0], [0, 0], [0, 0], [extra // 2, extra - extra // 2]])

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "strides": self.strides}


class Builder:
    """Makes the layers of one backbone with its shared settings."""

    def __init__(self, weight_decay=0.0, dtype=None, conv_bias=False):
        self.regularizer = kernel_regularizer(weight_decay)
        self.dtype = dtype
        # ResNets drop the conv bias (BN follows); torchvision's VGG-BN keeps it.
        self.conv_bias = conv_bias

    def input(self, input_shape):
        return keras.Input(shape=tuple(input_shape), dtype=input_dtype(self.dtype), name="images")

    def conv(self, x, filters, *, kernel_size, strides, name):
        padding = "same"
        if strides > 1 and kernel_size > 1:
            x, padding = self.pad(x, kernel_size // 2, f"{name}_pad"), "valid"
        return layers.Conv2D(
            filters, kernel_size, strides=strides, padding=padding, use_bias=self.conv_bias,
            kernel_initializer="he_normal", kernel_regularizer=self.regularizer,
            dtype=self.dtype, name=name)(x)

    def pad(self, x, size, name):
        """Zero padding of ``size`` on every side, as PyTorch's ``padding=size``.

        For a strided window TF's ``"same"`` pads less before than after (for an
        even input and stride 2: 0 and 1), so output ``i`` is centred on input
        ``2i + 1`` while a strided 1x1 shortcut reads ``2i``: branch and shortcut
        would be one pixel apart. Equal padding centres both on ``2i`` (PyTorch,
        and keras.applications' ResNet, do the same); output sizes do not change.
        """
        return layers.ZeroPadding2D(size, dtype=self.dtype, name=name)(x)

    def conv_bn(self, x, filters, *, kernel_size, strides, name, relu=True):
        x = self.conv(x, filters, kernel_size=kernel_size, strides=strides, name=f"{name}_conv")
        x = BatchNorm(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, dtype=self.dtype,
                      name=f"{name}_bn")(x)
        return self.relu(x, f"{name}_relu") if relu else x

    def relu(self, x, name):
        return layers.ReLU(dtype=self.dtype, name=name)(x)

    def max_pool(self, x, pool_size, strides, name):
        return layers.MaxPooling2D(pool_size, strides, dtype=self.dtype, name=name)(x)

    def shortcut(self, x, filters, strides, kind, name):
        if strides == 1 and x.shape[-1] == filters:
            return x
        if kind == "A":
            return ZeroPadShortcut(filters, strides, dtype=self.dtype, name=f"{name}_pad")(x)
        return self.conv_bn(x, filters, kernel_size=1, strides=strides, name=f"{name}_proj",
                            relu=False)

    def residual(self, block_input, branch, *, filters, strides, shortcut, name):
        s = self.shortcut(block_input, filters, strides, shortcut, name)
        y = layers.Add(dtype=self.dtype, name=f"{name}_add")([s, branch])
        return self.relu(y, f"{name}_out")

    def basic_block(self, x, filters, strides, shortcut, name):
        y = self.conv_bn(x, filters, kernel_size=3, strides=strides, name=f"{name}_1")
        y = self.conv_bn(y, filters, kernel_size=3, strides=1, name=f"{name}_2", relu=False)
        return self.residual(x, y, filters=filters, strides=strides, shortcut=shortcut,
                             name=name)

    def bottleneck_block(self, x, filters, strides, shortcut, name):
        # ResNet v1.5 (torchvision): the stride sits on the 3x3 conv, not the
        # first 1x1, so no activations are skipped; same parameter count as v1.
        y = self.conv_bn(x, filters, kernel_size=1, strides=1, name=f"{name}_1")
        y = self.conv_bn(y, filters, kernel_size=3, strides=strides, name=f"{name}_2")
        y = self.conv_bn(y, 4 * filters, kernel_size=1, strides=1, name=f"{name}_3",
                         relu=False)
        return self.residual(x, y, filters=4 * filters, strides=strides, shortcut=shortcut,
                             name=name)

    def resnet_stages(self, x, widths, blocks, block="basic", shortcut="B"):
        """Stacks the residual stages; the first keeps the resolution, the
        others halve it in their first block. Returns every stage's output."""
        block_fn = {"basic": self.basic_block, "bottleneck": self.bottleneck_block}[block]
        outputs = []
        for i, (width, n) in enumerate(zip(widths, blocks), start=1):
            for j in range(1, n + 1):
                strides = 2 if i > 1 and j == 1 else 1
                x = block_fn(x, width, strides, shortcut, f"stage{i}_block{j}")
            outputs.append(x)
        return outputs

    def resnet_features(self, x, widths, blocks, block, shortcut, class_blocks=None):
        """``(inner, last)`` of the residual stages. ``class_blocks=(num_classes,
        width)`` replaces the last stage by one stage of that width per class, all
        fed by the inner stage and concatenated (see ``class_blocks.py``)."""
        if class_blocks is None:
            stages = self.resnet_stages(x, widths, blocks, block, shortcut)
            return stages[-2], stages[-1]
        inner = self.resnet_stages(x, widths[:-1], blocks[:-1], block, shortcut)[-1]
        return inner, self.class_stages(inner, *class_blocks, blocks[-1], block)

    def class_stages(self, x, num_classes, width, blocks, block):
        """One last stage per class from ``x``, concatenated by class. Projection
        shortcuts: zero-padding (option A) cannot narrow ``x`` to a small width."""
        block_fn = {"basic": self.basic_block, "bottleneck": self.bottleneck_block}[block]
        outputs = []
        for c in range(num_classes):
            y = x
            for j in range(1, blocks + 1):
                y = block_fn(y, width, 2 if j == 1 else 1, "B", f"class{c}_block{j}")
            outputs.append(y)
        return layers.Concatenate(dtype=self.dtype, name="class_blocks")(outputs)


def check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}; got {value!r}")


def check_stages(stage_widths, blocks_per_stage,
                 names=("stage_widths", "blocks_per_stage")):
    if len(stage_widths) != len(blocks_per_stage) or len(stage_widths) < 2:
        raise ValueError(f"{names[0]} and {names[1]} need the same length, at least 2; "
                         f"got {tuple(stage_widths)} and {tuple(blocks_per_stage)}")


def class_stage_options(num_classes, class_block_width):
    """``resnet_features``' ``class_blocks`` for a backbone's ``class_block_width``:
    None for the plain last stage."""
    if class_block_width is None:
        return None
    check_class_blocks(num_classes, class_block_width)
    return num_classes, class_block_width
