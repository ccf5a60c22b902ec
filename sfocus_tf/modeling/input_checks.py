"""Input checks that fail early with a message naming what was wrong."""

from __future__ import annotations

import warnings

import keras
import tensorflow as tf

from keras_models.backbone import FEATURE_KEYS
from keras_models.batch_norm import is_inexact_batch_norm


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def check_batch_norm(backbone, config) -> None:
    """Stock BatchNormalization gets second derivatives wrong on TF (a warning) and
    cannot hide its statistics from the attention tape (an error)."""
    stock = [layer.name for layer in _all_layers(backbone) if is_inexact_batch_norm(layer)]
    if stock and config.decouple_batch_norm:
        raise ValueError(
            f"decouple_batch_norm=True needs keras_models.BatchNorm, but backbone "
            f"{backbone.name!r} has keras.layers.BatchNormalization layer(s) (e.g. "
            f"{stock[0]!r}); convert it with keras_models.exact_batch_norm(backbone)")
    if stock and config.second_order and config.uses_attention:
        warnings.warn(
            f"backbone {backbone.name!r} has {len(stock)} keras.layers.BatchNormalization "
            f"layer(s) (e.g. {stock[0]!r}); their second derivatives are inexact on "
            "TensorFlow, so second_order=True is approximate there. Convert the backbone "
            "with keras_models.exact_batch_norm(backbone).", stacklevel=3)


def check_backbone(backbone) -> tuple:
    """Checks the backbone contract; returns the image shape it expects."""
    if not isinstance(backbone, keras.Model):
        raise TypeError(f"backbone must be a keras.Model; got {type(backbone).__name__}")
    try:
        outputs, input_shape = backbone.output, backbone.input_shape
    except (AttributeError, ValueError) as error:
        raise ValueError("backbone must be a functional keras.Model with one image input "
                         "(see keras_models.Backbone)") from error
    if not isinstance(outputs, dict) or not set(FEATURE_KEYS) <= set(outputs):
        raise ValueError("backbone must output a dict {'inner': F_in, 'last': F_last}; "
                         f"got {outputs!r}")
    for key in FEATURE_KEYS:
        if len(outputs[key].shape) != 4:
            raise ValueError(f"backbone output {key!r} must be a [B, H, W, C] feature map; "
                             f"got shape {outputs[key].shape}")
    if len(input_shape) != 4:
        raise ValueError(f"backbone input must be images [B, H, W, C]; got {input_shape}")
    return tuple(input_shape[1:])


def check_images(images, image_shape) -> tf.Tensor:
    """Images as a float tensor [B, H, W, C] matching the backbone's input."""
    images = tf.convert_to_tensor(images)
    if images.shape.rank != 4:
        raise ValueError(f"images must be a batch of shape [B, H, W, C] = [B, "
                         f"{', '.join(map(str, image_shape))}]; got shape {images.shape}")
    for axis, (got, want) in enumerate(zip(images.shape[1:], image_shape), start=1):
        if got is not None and want is not None and got != want:
            raise ValueError(f"images have shape {images.shape} but the backbone expects "
                             f"[B, {', '.join(map(str, image_shape))}] (axis {axis} differs)")
    if not images.dtype.is_floating:
        images = tf.cast(images, tf.float32)
    return images


def check_labels(labels, num_classes: int, multi_label: bool,
                 check_values: bool = True) -> tf.Tensor:
    """Class ids [B] (int32) or multi-hot labels [B, N] (float32).

    ``check_values`` adds checks of the label values (and of a multi-hot width
    unknown until run time) naming the offending values; in a graph they are asserts,
    so callers keep them outside XLA, which drops asserts.
    """
    labels = tf.convert_to_tensor(labels)
    if multi_label:
        if labels.shape.rank != 2 or labels.shape[-1] not in (None, num_classes):
            raise ValueError(f"multi-label labels must be multi-hot [B, {num_classes}]; "
                             f"got shape {labels.shape}")
        labels = tf.cast(labels, tf.float32)
        if check_values:
            width = tf.shape(labels)[-1]
            labels = _require(labels, tf.equal(width, num_classes), width,
                              f"multi-label labels must be multi-hot vectors of width "
                              f"{num_classes} (num_classes): got width")
            binary = (labels == 0.0) | (labels == 1.0)
            labels = _require(labels, tf.reduce_all(binary), tf.boolean_mask(labels, ~binary),
                              "multi-label labels must be 0 or 1: got")
        return labels
    if labels.shape.rank == 2 and labels.shape[-1] == 1:
        labels = labels[:, 0]
    if labels.shape.rank != 1:
        raise ValueError(f"labels must be class ids of shape [B] (or [B, 1]); got shape "
                         f"{labels.shape}. One-hot labels: pass tf.argmax(labels, -1)")
    labels = tf.cast(labels, tf.int32)
    if check_values:
        inside = (labels >= 0) & (labels < num_classes)
        labels = _require(labels, tf.reduce_all(inside), tf.boolean_mask(labels, ~inside),
                          f"labels out of range [0, {num_classes - 1}] "
                          f"(num_classes={num_classes}): got")
    return labels


# Marks the asserts of ``_require`` in TF's error text, for ``failed_check``.
_CHECK_MARK = "sfocus input check:"
_SHOWN_VALUES = 5


def _require(labels, condition, values, message: str) -> tf.Tensor:
    """``labels``, checked: unless ``condition``, ``message`` followed by (the first
    few of) ``values``: a ValueError now when eager, else an assert that
    ``failed_check`` reads back. In a graph the returned labels wait for the assert,
    so no op that uses them (e.g. the cross-entropy's own range check) fails first."""
    if tf.executing_eagerly():
        if not bool(condition):
            shown = values.numpy().reshape(-1)
            more = " ..." if shown.size > _SHOWN_VALUES else ""
            raise ValueError(f"{message} {' '.join(map(str, shown[:_SHOWN_VALUES]))}{more}")
        return labels
    check = tf.debugging.Assert(condition, [_CHECK_MARK, message, values],
                                summarize=_SHOWN_VALUES)
    with tf.control_dependencies([check]):
        return tf.identity(labels)


def failed_check(error: Exception) -> str | None:
    """The one-line message of a failed ``_require`` assert inside a TF error (which
    otherwise carries a graph traceback), or None if the error is not one."""
    text = getattr(error, "message", str(error))
    marker = f"assertion failed: [{_CHECK_MARK}] "
    for line in text.splitlines():
        if marker in line:  # "[message] [values]", each as TF prints them
            pieces = line.split(marker, 1)[1].strip()[1:-1].split("] [")
            return " ".join(piece.strip() for piece in pieces)
    return None
