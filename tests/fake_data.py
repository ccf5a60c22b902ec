"""Small fake datasets written by tests, in the formats the loaders read."""

import gzip

import numpy as np

from sfocus_tf.data import fashion_mnist


def write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    with gzip.open(path, "wb") as stream:
        stream.write(header + array.astype(np.uint8).tobytes())


def write_fake_fashion(root, num_examples=6, num_test=None):
    """Fashion-MNIST-format files under ``root`` (a pathlib.Path); returns str(root).

    Each class is a bright square at its own place on noise, so a model can learn it.
    """
    rng = np.random.default_rng(0)
    sizes = {"train": num_examples, "test": num_test or num_examples}
    for split, (image_file, label_file) in fashion_mnist.SPLIT_FILES.items():
        labels = np.arange(sizes[split]) % 10
        images = rng.integers(0, 100, (sizes[split], 28, 28))
        for image, label in zip(images, labels):
            row, col = divmod(int(label), 5)
            image[2 + 12 * row:12 + 12 * row, 1 + 5 * col:6 + 5 * col] = 255
        write_idx(root / image_file, images)
        write_idx(root / label_file, labels)
    return str(root)
