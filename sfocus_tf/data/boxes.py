"""Bounding boxes, normalised [ymin, xmin, ymax, xmax], kept in step with image crops and flips."""

import tensorflow as tf


def crop_boxes(boxes, image_hw, window_offset, window_hw):
    """Boxes normalised to an image of size ``image_hw`` -> normalised to a crop window of it.

    ``window_offset`` and ``window_hw`` are in pixels of that image. Parts outside the
    window are clipped, so a box entirely outside becomes empty (zero area).
    """
    image_scale = tf.cast(tf.tile(image_hw, [2]), tf.float32)
    offset = tf.cast(tf.tile(window_offset, [2]), tf.float32)
    window_scale = tf.cast(tf.tile(window_hw, [2]), tf.float32)
    return tf.clip_by_value((boxes * image_scale - offset) / window_scale, 0.0, 1.0)


def flip_boxes_left_right(boxes):
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    return tf.stack([ymin, 1.0 - xmax, ymax, 1.0 - xmin], axis=-1)


def pad_boxes(boxes, box_labels, max_boxes):
    """Fixed ``max_boxes`` rows so examples batch: boxes zero-padded, labels -1-padded.

    Boxes and labels are cut and padded separately (not assumed to be the same length),
    since tfds' mock data draws their lengths independently.
    """
    boxes = tf.reshape(boxes, [-1, 4])[:max_boxes]
    box_labels = tf.cast(box_labels, tf.int32)[:max_boxes]
    boxes = tf.pad(boxes, [[0, max_boxes - tf.shape(boxes)[0]], [0, 0]])
    box_labels = tf.pad(box_labels, [[0, max_boxes - tf.shape(box_labels)[0]]],
                        constant_values=-1)
    return tf.ensure_shape(boxes, [max_boxes, 4]), tf.ensure_shape(box_labels, [max_boxes])
