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


def check_canvas_pipeline(name, root, canvases, train_all):
    """What the pipeline gives for garments placed on canvases (fashion_mnist_cluttered,
    fashion_mnist_duo) from fake files at ``root``: ``canvases`` uint8 [N, S, S] are its
    test split's, ``train_all`` the size of its training split."""
    from sfocus_tf import data  # here: the writers above need only the file format
    images = np.concatenate([batch[0].numpy() for batch in data.load(
        name, "test", 4, training=False, data_dir=root)])
    preset = data.get_preset(name)
    np.testing.assert_allclose(images[..., 0] * preset.std[0] + preset.mean[0],
                               canvases / 255.0, atol=1e-5)
    assert data.num_examples(name, "train_all", data_dir=root) == train_all
    assert data.class_names(name) == list(fashion_mnist.CLASS_NAMES)
    train_batch = next(iter(data.load(name, None, 4, training=True, data_dir=root, seed=0)))
    assert len(train_batch) == 2 and train_batch[0].shape == (4, *canvases.shape[1:], 1)
