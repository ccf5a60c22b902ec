"""Whether the attention terms act: their gradients against cross-entropy's, and how much
of the image the maps cover.

A term can be satisfied by construction (two one-position maps never overlap) or switch
its maps off; then it adds nothing to training whatever its weight. These figures, on
one fixed batch, show it while a run trains:

- ``grad_ratio_<term>``: the norm of the weighted term's gradient over the trainable
  weights, divided by the norm of cross-entropy's gradient (0: the term does nothing).
- ``area_<map>``: the map's effective area ``(sum a)^2 / sum a^2`` as a share of its
  positions (1: uniform; 1 / positions: a single point; 0 for an all-zero map).
- ``empty_<map>``: the share of maps that mark no position (``losses.empty_maps``).
"""

from __future__ import annotations

import contextlib

import numpy as np
import tensorflow as tf

from sfocus_tf.modeling import losses
from sfocus_tf.modeling.gradcam import MAP_NAMES, compute_attention
from sfocus_tf.modeling.terms import ATTENTION_TERMS


def effective_area(maps) -> tf.Tensor:
    """[B]: ``(sum a)^2 / (sum a^2 * positions)`` of each [B, H, W] map; 0 where a map
    is zero everywhere."""
    maps = losses.as_maps(maps, "maps")
    total = tf.reduce_sum(maps, axis=[1, 2])
    squares = tf.reduce_sum(tf.square(maps), axis=[1, 2])
    positions = float(maps.shape[1] * maps.shape[2])
    return tf.math.divide_no_nan(tf.square(total), squares * positions)


def map_coverage(model, images, labels, *, training: bool = False, reading=None) -> dict:
    """``area_<map>`` and ``empty_<map>`` (batch means, tensors) of the four maps of the
    model's training reading (or ``reading``)."""
    attention = compute_attention(model, images, labels, training=training, reading=reading)
    normalize = model.sfocus_config.replace(**(reading or {})).normalize
    out = {}
    for name in MAP_NAMES:
        out[f"area_{name}"] = tf.reduce_mean(effective_area(attention[name]))
        out[f"empty_{name}"] = tf.reduce_mean(losses.empty_maps(attention[name], normalize))
    return out


def _norm(gradients) -> tf.Tensor:
    return tf.linalg.global_norm([g for g in gradients if g is not None])


def gradient_ratios(model, images, labels) -> dict:
    """``grad_ratio_<term>`` (tensors) for each attention term weighted above 0, on one
    batch in training mode (BatchNorm's moving statistics move: see ``diagnostics``).
    The weight includes the warm-up factor of the current step."""
    weights = model.sfocus_config.term_weights
    weighted = [term.name for term in ATTENTION_TERMS if weights[term.name] > 0]
    if not weighted:
        return {}
    variables = model.trainable_variables
    with tf.GradientTape(persistent=True) as tape:
        terms = model.objective(images, labels, training=True)
        scale = tf.cast(model._attention_scale(True), terms["ce"].dtype)
        parts = {name: scale * weights[name] * terms[name] for name in weighted}
    ce_norm = _norm(tape.gradient(terms["ce"], variables))
    return {f"grad_ratio_{name}": tf.math.divide_no_nan(
                _norm(tape.gradient(part, variables)), ce_norm)
            for name, part in parts.items()}


@contextlib.contextmanager
def statistics_kept(model):
    """Restores the model's non-trainable variables (BatchNorm's moving statistics) on
    exit: a diagnostic in training mode must not move them."""
    saved = [v.numpy() for v in model.non_trainable_variables]
    try:
        yield
    finally:
        for variable, value in zip(model.non_trainable_variables, saved):
            variable.assign(value)


def diagnostics(model, images, labels, *, training: bool) -> dict:
    """Every figure above on one batch, as floats: gradient ratios (in training mode,
    whatever ``training`` says: they describe the training step) and map coverage in
    the mode ``training`` gives. The model is left as it was. Under a tf.distribute
    strategy every replica computes the figures of the whole batch (the gradients of a
    distributed variable exist only in a replica's context); the first one's are kept."""
    images = tf.convert_to_tensor(images)
    labels = tf.convert_to_tensor(labels)

    def figures():
        # the maps first: the training-mode pass of the gradients moves BatchNorm's
        # statistics, which an inference-mode map would then read
        out = dict(map_coverage(model, images, labels, training=training))
        out.update(gradient_ratios(model, images, labels))
        return out

    strategy = tf.distribute.get_strategy()
    with statistics_kept(model):
        if tf.distribute.in_cross_replica_context() and tf.distribute.has_strategy():
            per_replica = tf.function(lambda: strategy.run(figures))()  # eager run: slow
            out = {name: strategy.experimental_local_results(value)[0]
                   for name, value in per_replica.items()}
        else:
            out = figures()
    return {name: float(np.asarray(value)) for name, value in out.items()}
