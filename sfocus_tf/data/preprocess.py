"""Deterministic image preprocessing shared by the evaluation pipeline and the serving graph.

Both call ``eval_geometry`` then ``normalize``, so an exported model sees exactly what the
model saw in evaluation. Everything here is plain TF ops on uint8 images shaped
[H, W, C] or [B, H, W, C].
"""

import tensorflow as tf

from sfocus_tf.data import boxes as boxes_lib
from sfocus_tf.data.presets import RESIZED_CROP_FLIP, DatasetPreset, lookup


def normalize(images, preset: DatasetPreset):
    """uint8 (or float on the 0..255 scale) -> float32 ``(x / 255 - mean) / std``."""
    mean = tf.constant(preset.mean, tf.float32)
    std = tf.constant(preset.std, tf.float32)
    return (tf.cast(images, tf.float32) / 255.0 - mean) / std


def resize_to(images, height_width):
    """Resize unless the static shape already matches (a same-size resize is exact anyway)."""
    if tuple(images.shape[-3:-1]) == tuple(height_width):
        return images
    return tf.image.resize(images, height_width, antialias=True)


def resize_shorter_side_and_center_crop(images, shorter_side, crop_hw, boxes=None):
    """The classic ImageNet evaluation transform (e.g. shorter side 256, centre 224 x 224)."""
    shape = tf.shape(images)
    height, width = shape[-3], shape[-2]
    scale = tf.cast(shorter_side, tf.float32) / tf.cast(tf.minimum(height, width), tf.float32)
    # Never below the crop, or rounding could leave the crop one pixel too big.
    new_height = tf.maximum(crop_hw[0], _scaled(height, scale))
    new_width = tf.maximum(crop_hw[1], _scaled(width, scale))
    images = tf.image.resize(images, tf.stack([new_height, new_width]), antialias=True)
    offset_y = (new_height - crop_hw[0]) // 2
    offset_x = (new_width - crop_hw[1]) // 2
    images = tf.image.crop_to_bounding_box(images, offset_y, offset_x, *crop_hw)
    if boxes is not None:
        # A resize keeps normalised coordinates; only the crop moves them.
        boxes = boxes_lib.crop_boxes(boxes, tf.stack([new_height, new_width]),
                                     tf.stack([offset_y, offset_x]), tf.constant(crop_hw))
    return images, boxes


def _scaled(size, scale):
    return tf.cast(tf.round(tf.cast(size, tf.float32) * scale), tf.int32)


def eval_geometry(images, preset: DatasetPreset, boxes=None):
    """Resize (and centre-crop for ImageNet-like presets) to ``preset.image_size``."""
    crop_hw = tuple(preset.image_size[:2])
    if preset.augmentation == RESIZED_CROP_FLIP:
        return resize_shorter_side_and_center_crop(images, preset.eval_resize, crop_hw, boxes)
    return resize_to(images, crop_hw), boxes


def eval_transform(image, preset: DatasetPreset, boxes=None):
    """The evaluation pipeline's per-example transform: geometry, then normalisation."""
    image, boxes = eval_geometry(image, preset, boxes)
    return normalize(image, preset), boxes


def preprocess_for_serving(images, preset):
    """uint8 [B, H, W, C] (any H, W; one size per batch) -> the model's float32 input.

    ``preset`` is a ``DatasetPreset`` (pass the one training used, with its image_size
    override) or a dataset name. Pure TF ops: usable inside a tf.function / SavedModel.
    """
    if isinstance(preset, str):
        preset = lookup(preset)
    images = tf.convert_to_tensor(images)
    if images.dtype != tf.uint8:
        raise TypeError(f"preprocess_for_serving expects uint8 images, got {images.dtype}")
    return eval_transform(images, preset)[0]
