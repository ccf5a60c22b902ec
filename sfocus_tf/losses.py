"""The SFOCUS attention losses, as small pure functions on batched maps.

Every function takes normalised attention maps of shape ``[B, H, W]`` and
returns one value per example, ``[B]`` (``soft_mask`` returns a map). The model
takes the batch mean; callers that want other reductions can do their own.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

EPS = 1e-8  # keeps the ratios finite on all-zero maps


def _maps(x, name: str) -> tf.Tensor:
    x = tf.convert_to_tensor(x)
    if not x.dtype.is_floating:
        x = tf.cast(x, tf.float32)
    if x.shape.rank != 3:
        raise ValueError(f"{name} must be a batch of maps of shape [B, H, W]; "
                         f"got shape {x.shape}")
    return x


def _spatial_sum(x: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(x, axis=[1, 2])


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
    maps = _maps(maps, "maps")
    height, width = maps.shape[1], maps.shape[2]
    if height is None or width is None:
        raise ValueError(f"maps need a static spatial size; got shape {maps.shape}")
    rows = tf.constant(_interpolation_matrix(height, int(size[0])), maps.dtype)
    cols = tf.constant(_interpolation_matrix(width, int(size[1])), maps.dtype)
    return tf.einsum("ph,bhw,qw->bpq", rows, maps, cols)


def soft_mask(target_map, sigma: float = 0.55, omega: float = 100.0) -> tf.Tensor:
    """``sigmoid(omega * (A - sigma))``: a differentiable "where the target looks"."""
    target_map = _maps(target_map, "target_map")
    return tf.sigmoid(omega * (target_map - sigma))


def separability_loss(target_map, confusing_map, mask, eps: float = EPS) -> tf.Tensor:
    """``2 * sum(min(A_T, A_C) * M) / (sum(A_T + A_C) + eps)`` per example.

    0 when the two classes attend to disjoint pixels; 1 when the maps are equal
    and the mask covers them.
    """
    target_map = _maps(target_map, "target_map")
    confusing_map = _maps(confusing_map, "confusing_map")
    mask = _maps(mask, "mask")
    shared = _spatial_sum(tf.minimum(target_map, confusing_map) * mask)
    return 2.0 * shared / (_spatial_sum(target_map + confusing_map) + eps)


def attention_overlap(target_map, confusing_map, eps: float = EPS) -> tf.Tensor:
    """Overlap of two maps (the separability loss with no mask), in [0, 1]."""
    target_map = _maps(target_map, "target_map")
    return separability_loss(target_map, confusing_map, tf.ones_like(target_map), eps)


def attention_consistency(inner_target_map, last_mask, eps: float = EPS) -> tf.Tensor:
    """Share of the inner map's mass inside the (upsampled) last-layer mask."""
    inner_target_map = _maps(inner_target_map, "inner_target_map")
    mask = resize_maps(last_mask, inner_target_map.shape[1:3])
    inside = _spatial_sum(inner_target_map * mask)
    return inside / (_spatial_sum(inner_target_map) + eps)


def consistency_loss(inner_target_map, last_mask, theta: float = 0.8,
                     clamp: bool = False, eps: float = EPS) -> tf.Tensor:
    """``theta - attention_consistency``; ``clamp`` gives ``max(0, .)``.

    The mask is resized (bilinear) to the inner map's size.
    """
    loss = theta - attention_consistency(inner_target_map, last_mask, eps)
    return tf.nn.relu(loss) if clamp else loss


def empty_maps(maps, normalize: str = "max", eps: float = EPS) -> tf.Tensor:
    """1.0 for each ``[B, H, W]`` normalised map that is empty (its raw peak is at most
    ``eps``, so it marks no position), else 0.0. After ``max`` normalisation that is a
    peak below 0.5; ``minmax`` also counts a flat map as empty; ``none`` reads the raw
    peak."""
    maps = _maps(maps, "maps")
    threshold = eps if normalize == "none" else 0.5
    return tf.cast(tf.reduce_max(maps, axis=[1, 2]) <= threshold, maps.dtype)
