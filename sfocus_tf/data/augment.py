"""Training-time augmentation, with stateless random ops driven by seeds from the pipeline.

The seeds come from ``tf.data.Dataset.random``, so a run is reproducible for a given seed
and parallel map threads cannot reorder the random numbers. Small fixed-size images are
augmented a whole batch at a time (one seed per batch): with a per-example map, a
Fashion-MNIST training epoch took 10 s of input pipeline on 2 CPU cores; batched, 1.2 s.
"""

import tensorflow as tf

from sfocus_tf.data import boxes as boxes_lib

# Inception-style crop, as in torchvision's RandomResizedCrop and TF's official ResNet.
CROP_AREA_RANGE = (0.08, 1.0)
CROP_ASPECT_RATIO_RANGE = (3.0 / 4.0, 4.0 / 3.0)
CROP_MIN_COVERED = 0.1
CROP_MAX_ATTEMPTS = 10


def pad_crop_flip(images, seed, pad):
    """Per image of [B, H, W, C]: zero-pad by ``pad``, crop H x W at random, maybe flip."""
    offset_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    offsets = tf.random.stateless_uniform([batch, 2], offset_seed, minval=0,
                                          maxval=2 * pad + 1, dtype=tf.int32)
    flip = tf.random.stateless_uniform([batch, 1], flip_seed) < 0.5
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    rows = offsets[:, :1] + tf.range(height)[None]
    columns = tf.range(width)[None]
    # Reading the window's columns backwards is the flip.
    columns = offsets[:, 1:] + tf.where(flip, width - 1 - columns, columns)
    cropped = tf.gather(padded, rows, axis=1, batch_dims=1)
    cropped = tf.gather(cropped, columns, axis=2, batch_dims=1)
    cropped.set_shape(images.shape)
    return cropped


def random_resized_crop_flip(image, seed, size_hw, boxes=None):
    """Random area/aspect crop of one image resized to ``size_hw``, then a random flip.

    ``boxes`` (normalised, [..., 4]) follow the crop and flip.
    """
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    image_shape = tf.shape(image)
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        image_shape, bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=crop_seed,
        min_object_covered=CROP_MIN_COVERED, aspect_ratio_range=CROP_ASPECT_RATIO_RANGE,
        area_range=CROP_AREA_RANGE, max_attempts=CROP_MAX_ATTEMPTS,
        use_image_if_no_bounding_boxes=True)
    image = tf.image.resize(tf.slice(image, begin, crop_size), size_hw, antialias=True)
    flip = tf.random.stateless_uniform([], seed=flip_seed) < 0.5
    image = tf.cond(flip, lambda: tf.reverse(image, axis=[1]), lambda: image)
    if boxes is not None:
        boxes = boxes_lib.crop_boxes(boxes, image_shape[:2], begin[:2], crop_size[:2])
        boxes = tf.cond(flip, lambda: boxes_lib.flip_boxes_left_right(boxes), lambda: boxes)
    return image, boxes

