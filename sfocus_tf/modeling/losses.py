"""The SFOCUS attention losses, as small pure functions on batched maps.

Every function takes normalised attention maps of shape ``[B, H, W]`` and
returns one value per example, ``[B]`` (``soft_mask`` returns a map). The model
takes the batch mean; callers that want other reductions can do their own.
Functions of several maps of the same shape take them by keyword only, so that
a target map can never silently stand in for a confusing map or a mask.
"""

from __future__ import annotations

import tensorflow as tf

from sfocus_tf.modeling.maps import as_maps, resize_maps

EPS = 1e-8  # keeps the ratios finite on all-zero maps


def _spatial_sum(x: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(x, axis=[1, 2])


def soft_mask(target_map, sigma: float = 0.55, omega: float = 100.0) -> tf.Tensor:
    """``sigmoid(omega * (A - sigma))``: a differentiable "where the target looks"."""
    target_map = as_maps(target_map, "target_map")
    return tf.sigmoid(omega * (target_map - sigma))


def consistency_mask(target_map, size, *, sigma: float = 0.55, omega: float = 100.0,
                     eps: float = EPS) -> tf.Tensor:
    """The soft mask of ``target_map`` [B, H, W] at ``size = (h, w)``: the map upsampled
    (bilinear), renormalised to peak 1, then ``soft_mask``. Its reach is the map's
    region at any position and sharpness (upsampling a mask instead lowers its peak)."""
    resized = resize_maps(target_map, size)
    resized = resized / (tf.reduce_max(resized, axis=[1, 2], keepdims=True) + eps)
    return soft_mask(resized, sigma, omega)


def separability_loss(*, target_map, confusing_map, mask, eps: float = EPS) -> tf.Tensor:
    """``2 * sum(min(A_T, A_C) * M) / (sum(A_T + A_C) + eps)`` per example.

    0 when the two classes attend to disjoint pixels; 1 when the maps are equal
    and the mask covers them.
    """
    target_map = as_maps(target_map, "target_map")
    confusing_map = as_maps(confusing_map, "confusing_map")
    mask = as_maps(mask, "mask")
    shared = _spatial_sum(tf.minimum(target_map, confusing_map) * mask)
    return 2.0 * shared / (_spatial_sum(target_map + confusing_map) + eps)


def attention_overlap(*, target_map, confusing_map, eps: float = EPS) -> tf.Tensor:
    """Overlap of two maps (the separability loss with no mask), in [0, 1]."""
    target_map = as_maps(target_map, "target_map")
    return separability_loss(target_map=target_map, confusing_map=confusing_map,
                             mask=tf.ones_like(target_map), eps=eps)


def attention_consistency(*, inner_target_map, last_mask, eps: float = EPS) -> tf.Tensor:
    """Share of the inner map's mass inside the (upsampled) last-layer mask."""
    inner_target_map = as_maps(inner_target_map, "inner_target_map")
    mask = resize_maps(last_mask, inner_target_map.shape[1:3])
    inside = _spatial_sum(inner_target_map * mask)
    return inside / (_spatial_sum(inner_target_map) + eps)


def consistency_loss(*, inner_target_map, last_mask, theta: float = 0.8,
                     clamp: bool = False, eps: float = EPS) -> tf.Tensor:
    """``theta - attention_consistency``; ``clamp`` gives ``max(0, .)``.

    The mask is resized (bilinear) to the inner map's size.
    """
    loss = theta - attention_consistency(inner_target_map=inner_target_map,
                                         last_mask=last_mask, eps=eps)
    return tf.nn.relu(loss) if clamp else loss


def empty_maps(maps, normalize: str = "max", eps: float = EPS) -> tf.Tensor:
    """1.0 for each ``[B, H, W]`` normalised map that is empty (its raw peak is at most
    ``eps``, so it marks no position), else 0.0. After ``max`` normalisation that is a
    peak below 0.5; ``minmax`` also counts a flat map as empty; ``none`` reads the raw
    peak."""
    maps = as_maps(maps, "maps")
    threshold = eps if normalize == "none" else 0.5
    return tf.cast(tf.reduce_max(maps, axis=[1, 2]) <= threshold, maps.dtype)


def black_white_loss(*, class_blocks, target, eps: float = EPS) -> tf.Tensor:
    """``exp(mean_{c negative} a_c - mean_{c positive} a_c)`` per example, the "++"
    variant's black-white loss, with ``a_c`` the mean activation (over positions and
    channels) of class c's block of ``class_blocks`` [B, H, W, C * k] (blocks in
    class order, ``keras_models.class_blocks``) and ``target`` the [B, C] class
    indicator (one-hot: ``exp(mean_{c != y} a_c - a_y)``; multi-hot: every positive
    label). An example without a positive or without a negative class gives 0."""
    class_blocks = tf.convert_to_tensor(class_blocks)
    target = tf.cast(target, class_blocks.dtype)
    num_classes = target.shape[-1]
    if len(class_blocks.shape) != 4 or class_blocks.shape[-1] % num_classes:
        raise ValueError(f"class_blocks must be [B, H, W, C * k] with C={num_classes} "
                         f"class blocks; got shape {class_blocks.shape}")
    height, width = class_blocks.shape[1], class_blocks.shape[2]
    per_class = tf.reshape(class_blocks, [-1, height, width, num_classes,
                                          class_blocks.shape[-1] // num_classes])
    means = tf.reduce_mean(per_class, axis=[1, 2, 4])  # a_c: [B, C]
    negative = 1.0 - target
    positives, negatives = tf.reduce_sum(target, -1), tf.reduce_sum(negative, -1)
    gap = (tf.reduce_sum(means * negative, -1) / tf.maximum(negatives, 1.0)
           - tf.reduce_sum(means * target, -1) / tf.maximum(positives, 1.0))
    has_both = tf.cast((positives > 0) & (negatives > 0), class_blocks.dtype)
    return has_both * tf.exp(gap)
