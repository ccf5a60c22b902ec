"""Batches of 2-D maps ``[B, H, W]`` (attention maps, masks): the shape check and the
bilinear resize that the losses, evaluation and the overlays share."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def as_maps(x, name: str) -> tf.Tensor:
    """``x`` as a floating-point tensor of shape [B, H, W] (integers become float32);
    a clear error naming ``name`` for any other rank."""
    x = tf.convert_to_tensor(x)
    if not x.dtype.is_floating:
        x = tf.cast(x, tf.float32)
    if x.shape.rank != 3:
        raise ValueError(f"{name} must be a batch of maps of shape [B, H, W]; "
                         f"got shape {x.shape}")
    return x


def _interpolation_matrix(size_in: int, size_out: int) -> np.ndarray:
    """[size_out, size_in] weights of 1-D linear interpolation with half-pixel
    centres (the convention of ``tf.image.resize``)."""
    source = (np.arange(size_out) + 0.5) * size_in / size_out - 0.5
    source = np.clip(source, 0, size_in - 1)
    low = np.floor(source).astype(int)
    high = np.minimum(low + 1, size_in - 1)
    weights = np.zeros((size_out, size_in))
    np.add.at(weights, (np.arange(size_out), low), 1.0 - (source - low))
    np.add.at(weights, (np.arange(size_out), high), source - low)
    return weights


def resize_maps(maps, size) -> tf.Tensor:
    """Bilinear resize of ``[B, H, W]`` maps to ``size = (h, w)``, in the maps' dtype.

    Written as two small matrix products (``tf.image.resize`` returns float32,
    which would cap float64 gradient checks); same values as
    ``tf.image.resize(..., "bilinear")`` without antialiasing.
    """
    maps = as_maps(maps, "maps")
    height, width = maps.shape[1], maps.shape[2]
    if height is None or width is None:
        raise ValueError(f"maps need a static spatial size; got shape {maps.shape}")
    rows = tf.constant(_interpolation_matrix(height, int(size[0])), maps.dtype)
    cols = tf.constant(_interpolation_matrix(width, int(size[1])), maps.dtype)
    return tf.einsum("ph,bhw,qw->bpq", rows, maps, cols)
