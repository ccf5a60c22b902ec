"""A tiny backbone for fast tests (two conv stages, BatchNorm, float32 or float64)."""

import keras

from keras_models import Backbone, BatchNorm


def tiny_backbone(input_shape=(12, 12, 3), num_classes=None, dtype=None, batch_norm=True,
                  activation="relu", weight_decay=0.0):
    """``activation="swish"`` gives a smooth network for finite-difference checks:
    relu kinks within the step size would make any finite difference disagree."""
    inputs = keras.Input(input_shape, dtype=dtype)
    regularizer = keras.regularizers.L2(weight_decay) if weight_decay else None

    def conv_stage(x, filters, strides, name):
        x = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", dtype=dtype,
                                use_bias=not batch_norm, name=f"{name}_conv",
                                kernel_regularizer=regularizer)(x)
        if batch_norm:
            x = BatchNorm(dtype=dtype, name=f"{name}_bn")(x)
        return keras.layers.Activation(activation, dtype=dtype, name=f"{name}_act")(x)

    x = conv_stage(inputs, 4, 1, "stem")
    inner = conv_stage(x, 6, 1, "inner")
    x = conv_stage(inner, 8, 2, "last_a")
    last = conv_stage(x, 8, 1, "last_b")
    return Backbone(inputs, inner, last, num_classes=num_classes, name="tiny")
