"""Input pipelines for SFOCUS: tfds datasets, image folders and offline Fashion-MNIST.

    ds = sfocus_tf.data.load("cifar10", "train", 128, training=True, seed=0)
    preset = sfocus_tf.data.get_preset("cifar10")  # looked up once, then passed:
    ds = sfocus_tf.data.load(preset, "test", 128, training=False)
    images = sfocus_tf.data.preprocess_for_serving(uint8_images, preset)  # export graphs
"""

from sfocus_tf.data.pipeline import (class_names, first_examples, get_preset,
                                    labels_read_once, load, num_examples)
from sfocus_tf.data.preprocess import normalize, preprocess_for_serving
from sfocus_tf.data.presets import DatasetPreset, names

__all__ = ["DatasetPreset", "class_names", "first_examples", "get_preset", "labels_read_once",
           "load", "names", "normalize", "num_examples", "preprocess_for_serving"]
from sfocus_tf.data.splits import ALL_TRAINING, VALIDATION  # noqa: E402,F401
