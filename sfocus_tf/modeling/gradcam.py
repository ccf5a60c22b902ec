"""Grad-CAM attention of a classifier, batched and in-graph.

For a class ``c`` and a feature map ``F`` [B, h, w, k] the Grad-CAM map is
``relu(sum_k alpha_k F[..., k])`` with ``alpha_k = mean_ij d s_c / d F_ijk``.
Per-example gradients are taken as the gradient of the batch sum
``sum_b s[b, c_b]``; with BatchNorm in training mode this couples the examples
of a batch through the batch statistics (see README, "BatchNorm coupling"),
unless ``decouple_batch_norm`` hides the statistics from the attention tape.

At the last layer the head is global average pooling + dense, so the gradient
is ``W[:, c] / (H * W)`` at every pixel and Grad-CAM reduces to CAM; we use that
closed form (tests check it against the tape).
"""

from __future__ import annotations

import contextlib
import weakref
from typing import Iterable

import tensorflow as tf

from keras_models.batch_norm import statistics_hidden_from
from sfocus_tf.modeling.sfocus_config import CHOICES, GRADCAM_READING
from sfocus_tf.modeling.losses import EPS
from sfocus_tf.modeling.input_checks import check_images, check_labels

MAP_NAMES = ("target_last", "confusing_last", "target_inner", "confusing_inner")


def full_precision(x: tf.Tensor) -> tf.Tensor:
    """Half-precision tensors as float32 (attention and losses are never computed
    in float16 / bfloat16); float32 and float64 pass through."""
    x = tf.convert_to_tensor(x)
    return tf.cast(x, tf.float32) if x.dtype in (tf.float16, tf.bfloat16) else x


def _check_choice(name: str, value: str) -> None:
    if value not in CHOICES[name]:
        raise ValueError(f"{name}={value!r} is not valid; allowed: "
                         + ", ".join(map(repr, CHOICES[name])))


def static_spatial_size(x: tf.Tensor, user: str) -> tuple:
    """``(H, W)`` of a [B, H, W, ...] tensor, which ``user`` needs at graph-building time."""
    height, width = x.shape[1], x.shape[2]
    if height is None or width is None:
        raise ValueError(f"{user} needs a feature map of known height and width; got shape "
                         f"{x.shape}. Build the backbone for one image size.")
    return height, width


def normalize_maps(maps: tf.Tensor, method: str = "max", eps: float = EPS) -> tf.Tensor:
    """Per-example normalisation of ``[B, H, W]`` maps: ``max``, ``minmax`` or ``none``."""
    _check_choice("normalize", method)
    if method == "none":
        return maps
    peak = tf.reduce_max(maps, axis=[1, 2], keepdims=True)
    if method == "max":
        return maps / (peak + eps)
    low = tf.reduce_min(maps, axis=[1, 2], keepdims=True)
    return (maps - low) / (peak - low + eps)


def activate(weighted_sum: tf.Tensor, activation: str = "relu", *,
             temperature: str = "logit") -> tf.Tensor:
    """The map from ``sum_k alpha_k F[..., k]`` [B, h, w]: ``relu`` (Grad-CAM), ``abs``,
    or ``softmax`` over positions of ``h * w`` times the sum (at the last layer of a
    GAP head that is the per-position class score, whose mean is the logit), divided
    by ``temperature``: 1 (``logit``) or the score's spatial standard deviation under
    stop_gradient (``spatial_std``), which leaves the map unchanged when the score is
    scaled."""
    _check_choice("map_activation", activation)
    _check_choice("map_temperature", temperature)
    if activation == "relu":
        return tf.nn.relu(weighted_sum)
    if activation == "abs":
        return tf.abs(weighted_sum)
    height, width = static_spatial_size(weighted_sum, "the softmax map activation")
    flat = tf.reshape(weighted_sum * float(height * width), [-1, height * width])
    if temperature == "spatial_std":
        flat = flat / (tf.stop_gradient(tf.math.reduce_std(flat, axis=-1, keepdims=True))
                       + EPS)
    return tf.reshape(tf.nn.softmax(flat, axis=-1), tf.shape(weighted_sum))


def weighted_map(features: tf.Tensor, channel_weights: tf.Tensor,
                 activation: str = "relu", *, temperature: str = "logit") -> tf.Tensor:
    """``activation(sum_k alpha_k F[..., k])`` for per-example weights ``alpha`` [B, k]."""
    return activate(tf.einsum("bhwk,bk->bhw", features, channel_weights), activation,
                    temperature=temperature)


def gradcam(features: tf.Tensor, gradients: tf.Tensor, *, weighting: str = "mean",
            second_order: bool = True, activation: str = "relu",
            temperature: str = "logit") -> tf.Tensor:
    """Grad-CAM map [B, h, w] from a feature map and d(score)/d(features).

    ``weighting='relu_mean'`` keeps only positive gradients before the mean.
    ``second_order=False`` treats the channel weights as constants.
    """
    _check_choice("gradcam_weights", weighting)
    if weighting == "relu_mean":
        gradients = tf.nn.relu(gradients)
    alpha = tf.reduce_mean(gradients, axis=[1, 2])
    if not second_order:
        alpha = tf.stop_gradient(alpha)
    return weighted_map(features, alpha, activation, temperature=temperature)


def cam(last_features: tf.Tensor, kernel: tf.Tensor, logit_gradient: tf.Tensor, *,
        weighting: str = "mean", second_order: bool = True,
        activation: str = "relu", temperature: str = "logit") -> tf.Tensor:
    """Closed-form Grad-CAM at the last layer of a GAP + dense head.

    ``logit_gradient`` [B, N] is d score / d logits: the one-hot (or multi-hot)
    class indicator for the logit score; ``kernel`` is the dense layer's [K, N]
    weight matrix.
    """
    height, width = static_spatial_size(last_features, "cam (Grad-CAM at a GAP head)")
    # d score / d F is the same at every pixel: one [B, 1, 1, K] "map" of it is enough.
    score_gradient = tf.matmul(logit_gradient, kernel, transpose_b=True) / float(height * width)
    return gradcam(last_features, score_gradient[:, None, None, :], weighting=weighting,
                   second_order=second_order, activation=activation,
                   temperature=temperature)


def class_scores(logits: tf.Tensor, *, target: tf.Tensor, confusing: tf.Tensor,
                 class_score: str = "logit", multi_label: bool = False):
    """Per-example scores [B] of the target and the confusing class, whose gradients
    Grad-CAM takes: the ``logit``; the ``log_prob`` (log-softmax, or log-sigmoid for
    multi-label data); or the ``logit_difference`` (target minus confusing for the
    target, the reverse for the confusing class)."""
    _check_choice("class_score", class_score)
    if class_score == "log_prob":
        logits = tf.math.log_sigmoid(logits) if multi_label else tf.nn.log_softmax(logits)
    target_score = tf.reduce_sum(logits * target, axis=-1)
    confusing_score = tf.reduce_sum(logits * confusing, axis=-1)
    if class_score == "logit_difference":
        return target_score - confusing_score, confusing_score - target_score
    return target_score, confusing_score


def select_classes(logits: tf.Tensor, labels=None, multi_label: bool = False):
    """Target and most-confusing classes, as ``[B, N]`` indicators and ids.

    Single-label: the target is the label (or the top-1 prediction when
    ``labels`` is None), the confusing class the highest other score.
    Multi-label: the target is every positive label (their scores are summed),
    the confusing class the highest-scoring negative label; ``target_class``
    reports the highest-scoring positive. An example with no positive label has
    no target (an all-zero ``target`` row, ``target_class`` -1); one with no
    negative label has no confusing class (an all-zero ``confusing`` row,
    ``confusing_class`` -1). ``SFocusModel`` gives such examples no attention
    terms that need the missing class. The excluded classes can never be picked,
    whatever their logits (even ``+-inf`` or 1e30 in float32).
    """
    logits = tf.stop_gradient(full_precision(logits))
    num_classes, dtype = logits.shape[-1], logits.dtype
    if labels is None:
        target = tf.one_hot(tf.argmax(logits, axis=-1), num_classes, dtype=dtype)
    elif multi_label:
        target = tf.cast(labels, dtype)
    else:
        target = tf.one_hot(labels, num_classes, dtype=dtype)
    positive = target > 0
    confusing_class = _best_class(logits, tf.logical_not(positive))
    target_class = _best_class(logits, positive)
    confusing = tf.one_hot(confusing_class, num_classes, dtype=dtype)  # -1: all zeros
    return target, confusing, target_class, confusing_class


def _best_class(logits: tf.Tensor, candidates: tf.Tensor) -> tf.Tensor:
    """Per row, the id of the highest-scoring candidate class, -1 where there is none.

    Other classes score ``-inf``, so no logit, however large, lets them win. TF's
    argmax kernel reports index 0 when no value exceeds the dtype's lowest finite
    value, so a row whose candidates all score that low (or ``-inf``) takes its first
    candidate.
    """
    best = tf.argmax(tf.where(candidates, logits, float("-inf")), axis=-1,
                     output_type=tf.int32)
    first = tf.argmax(tf.cast(candidates, tf.int32), axis=-1, output_type=tf.int32)
    best = tf.where(tf.gather(candidates, best, batch_dims=1), best, first)
    return tf.where(tf.reduce_any(candidates, axis=-1), best, -1)


# float16 gradients of a class score w.r.t. a feature map can fall into float16's
# subnormal range; the score is scaled before back-propagation and the gradient
# unscaled in float32 (exact: the gradient is linear in the score).
HALF_PRECISION_SCORE_SCALE = 1024.0


def compute_attention(model, images, labels=None, *, training: bool = False,
                      maps: Iterable[str] = MAP_NAMES, reading=None):
    """Forward pass plus the requested normalised attention maps of ``model``.

    ``model`` follows the SFocusModel contract: ``features(images, training)``
    -> (inner, last), ``head(last)`` -> logits, ``classifier.kernel``.
    Returns a dict with ``logits``, ``target``, ``confusing`` (indicators),
    ``target_class``, ``confusing_class``, ``last_features`` (F_last, at least
    float32) and each map in ``maps`` ([B, H, W]; float32, or float64 for a float64
    model), with its raw peak ``<map>_peak`` ([B]: the maximum over positions before
    normalisation, which tells an empty map from a small one). Called inside an outer
    ``GradientTape`` the maps are differentiable (second order when
    ``config.second_order``). ``reading`` (a dict of ``SFocusConfig`` fields) overrides
    how the maps are defined, e.g. ``config.GRADCAM_READING`` for standard Grad-CAM
    whatever the model trained with.
    """
    config = model.sfocus_config.replace(**(reading or {}))
    maps = tuple(maps)
    unknown = set(maps) - set(MAP_NAMES)
    if unknown:
        raise ValueError(f"Unknown attention map(s) {sorted(unknown)}; valid: {MAP_NAMES}")
    images = check_images(images, model.image_shape)

    with tf.GradientTape(persistent=True, watch_accessed_variables=False) as tape:
        # Watching the input makes every intermediate tensor differentiable
        # without recording variable reads we never differentiate here.
        tape.watch(images)
        hide_statistics = config.decouple_batch_norm and training
        with statistics_hidden_from(tape) if hide_statistics else contextlib.nullcontext():
            inner, last = model.features(images, training=training)
        logits = model.head(last)
        target, confusing, target_class, confusing_class = select_classes(
            logits, labels, config.multi_label)
        scale = HALF_PRECISION_SCORE_SCALE if inner.dtype == tf.float16 else 1.0
        # The batch sum: one backward pass gives every example's own gradient
        # (BatchNorm coupling aside).
        scores = dict(zip(("target", "confusing"), (
            scale * tf.reduce_sum(score) for score in class_scores(
                logits, target=target, confusing=confusing, class_score=config.class_score,
                multi_label=config.multi_label))))

    out = dict(logits=logits, target=target, confusing=confusing,
               target_class=target_class, confusing_class=confusing_class)
    last = full_precision(last)
    out["last_features"] = last  # for terms on the feature map itself (L_BW)
    kernel = tf.cast(model.classifier.kernel, last.dtype)
    for name in maps:
        role = name.split("_")[0]
        if name.endswith("_inner"):
            grads = full_precision(tape.gradient(scores[role], inner)) / scale
            raw = gradcam(full_precision(inner), grads, weighting=config.gradcam_weights,
                          second_order=config.second_order, activation=config.map_activation,
                          temperature=config.map_temperature)
        else:
            logit_gradient = tape.gradient(scores[role], logits) / scale
            raw = cam(last, kernel, logit_gradient, weighting=config.gradcam_weights,
                      second_order=config.second_order, activation=config.map_activation,
                      temperature=config.map_temperature)
        out[name] = normalize_maps(raw, config.normalize)
        out[f"{name}_peak"] = tf.reduce_max(raw, axis=[1, 2])
    del tape
    return out


# What the maps shown to a user are (evaluation, overlays, TensorBoard images, the
# SavedModel's attention signature): "gradcam", standard Grad-CAM whatever the model
# trained with, so that no training reading can improve its figures by redefining the
# map; or "training", the maps of the model's own training reading.
SHOWN_READINGS = ("gradcam", "training")


def shown_reading(which: str = "gradcam") -> dict | None:
    """The ``reading`` argument of ``compute_attention``/``attention_maps`` for the maps a
    user is shown: ``GRADCAM_READING``, or None (the model's own) for ``"training"``."""
    if which not in SHOWN_READINGS:
        raise ValueError(f"attention reading {which!r} is not valid; allowed: "
                         + ", ".join(map(repr, SHOWN_READINGS)))
    return dict(GRADCAM_READING) if which == "gradcam" else None


_COMPILED = weakref.WeakKeyDictionary()


def attention_maps(model, images, labels=None, reading=None) -> dict:
    """Normalised attention maps of a batch, computed in one traced graph.

    Returns ``target_last``, ``confusing_last`` ([B, H, W]), ``target_inner``,
    ``confusing_inner`` ([B, h, w]), ``target_class`` and ``confusing_class``
    ([B]; -1 for a multi-label example without such a class, see
    ``select_classes``), the raw peak of each map, ``<map>_peak`` ([B], see
    ``compute_attention``), and the ``logits`` ([B, N]) they came from. With
    ``labels=None`` the target is the top-1 prediction and the confusing class the
    runner-up; BatchNorm runs in inference mode. ``reading`` overrides how maps are
    defined (see ``compute_attention``); by default the model's own ``SFocusConfig``.
    """
    images = check_images(images, model.image_shape)
    if labels is not None:
        labels = check_labels(labels, model.num_classes, model.sfocus_config.multi_label)
    reading = dict(reading or {})
    key = tuple(sorted(reading.items()))
    compiled = _COMPILED.setdefault(model, {})
    if key not in compiled:
        model_ref = weakref.ref(model)  # the cache must not keep the model alive

        def maps_of(batch, batch_labels):
            out = compute_attention(model_ref(), batch, batch_labels, training=False,
                                    reading=reading)
            peaks = tuple(f"{name}_peak" for name in MAP_NAMES)
            return {name: out[name] for name in
                    MAP_NAMES + peaks + ("target_class", "confusing_class", "logits")}
        compiled[key] = tf.function(maps_of, reduce_retracing=True)
    return compiled[key](images, labels)
