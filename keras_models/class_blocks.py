"""Per-class last blocks (the "++" variant of SFOCUS) and the head that reads them.

A backbone built with ``class_block_width=w`` replaces its last stage by one stage
per class, each of width ``w``, all fed by the inner stage. ``last`` is their
concatenation, [B, H, W, C * k] with class c's block at channels
``[c * k, (c + 1) * k)`` (``k`` is ``w``, or ``4 w`` for bottleneck blocks).

:class:`ClassBlockDense` is the head for such a map: class c's logit reads only the
pooled channels of block c. Its ``kernel`` property is the equivalent block-diagonal
[C * k, C] dense kernel, so Grad-CAM of class c on the concatenated map (which weighs
every channel by the kernel's column c) is exactly Grad-CAM on block c: the other
blocks' channels get weight 0. Everything that reads ``classifier.kernel`` (the
closed-form CAM of ``sfocus_tf.modeling.gradcam``, export, evaluation, overlays) therefore
works unchanged.
"""

from __future__ import annotations

import keras
from keras import ops


def check_class_blocks(num_classes, class_block_width) -> None:
    """A clear error for a ++ backbone that cannot be built."""
    if isinstance(class_block_width, bool) or not isinstance(class_block_width, int) \
            or class_block_width < 1:
        raise ValueError(f"class_block_width must be a positive integer; "
                         f"got {class_block_width!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"class_block_width needs num_classes (one block per class, "
                         f">= 2); got num_classes={num_classes!r}")


@keras.saving.register_keras_serializable(package="keras_models")
class ClassBlockDense(keras.layers.Layer):
    """Logits of pooled per-class blocks: ``z_c = x[c*k:(c+1)*k] . w_c + b_c``.

    Input [B, C * k] (the global average pool of a class-block map), output [B, C].
    ``block_kernel`` [C, k] holds the only weights a dense layer on the same input
    could have without mixing blocks; ``kernel_regularizer`` applies to it (the
    same penalty as on a block-diagonal dense kernel, whose other entries are 0).
    """

    def __init__(self, units, kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None or channels % self.units:
            raise ValueError(f"{self.name}: {channels} input channels do not split into "
                             f"{self.units} equal class blocks")
        self.block_channels = channels // self.units
        self.block_kernel = self.add_weight(
            name="block_kernel", shape=(self.units, self.block_channels),
            initializer="glorot_uniform", regularizer=self.kernel_regularizer)
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")

    @property
    def kernel(self):
        """The block-diagonal [C * k, C] kernel of the equivalent dense layer."""
        eye = ops.eye(self.units, dtype=self.block_kernel.dtype)
        blocks = ops.expand_dims(self.block_kernel, -1) * ops.expand_dims(eye, 1)
        return ops.reshape(blocks, (self.units * self.block_channels, self.units))

    def call(self, inputs):
        blocks = ops.reshape(inputs, (-1, self.units, self.block_channels))
        return ops.sum(blocks * self.block_kernel, axis=-1) + self.bias

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer)}


def has_class_blocks(backbone) -> bool:
    """Whether ``backbone`` was built with per-class last blocks."""
    return getattr(backbone, "class_block_width", None) is not None
