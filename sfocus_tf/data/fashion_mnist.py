"""Fashion-MNIST read offline from Debian's ``dataset-fashion-mnist`` files (IDX format)."""

from __future__ import annotations

import gzip
import os

import numpy as np
import tensorflow as tf

DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_IDX_UINT8 = 0x08  # IDX type code of unsigned bytes, the only one these files use


class FashionMnistNotFoundError(FileNotFoundError):
    pass


def _split_paths(split: str, root: str | None) -> tuple[str, str]:
    if split not in SPLIT_FILES:
        raise ValueError(f"fashion_mnist has splits {sorted(SPLIT_FILES)}, got {split!r}")
    root = root or DEFAULT_ROOT
    paths = tuple(os.path.join(root, name) for name in SPLIT_FILES[split])
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
        raise FashionMnistNotFoundError(
            f"Fashion-MNIST files not found: {', '.join(missing)}. Install them with "
            f"`sudo apt-get install dataset-fashion-mnist` (files go to {DEFAULT_ROOT}), "
            "or point data_dir at a folder holding the four *-ubyte.gz files.")
    return paths


def _read_header(stream, path: str) -> tuple[int, ...]:
    """IDX header: two zero bytes, a type code, the number of dims, then big-endian dims."""
    magic = stream.read(4)
    if len(magic) != 4 or magic[:2] != b"\0\0" or magic[2] != _IDX_UINT8:
        raise ValueError(f"{path} is not an uint8 IDX file")
    num_dims = magic[3]
    return tuple(int(d) for d in np.frombuffer(stream.read(4 * num_dims), dtype=">u4"))


def read_idx(path: str) -> np.ndarray:
    """The whole array of a gzipped uint8 IDX file."""
    with gzip.open(path, "rb") as stream:
        shape = _read_header(stream, path)
        data = np.frombuffer(stream.read(), dtype=np.uint8)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape}, found {data.size} values")
    return data.reshape(shape)


def load_arrays(split: str, root: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 28, 28], labels int32 [N]) of "train" or "test"."""
    image_path, label_path = _split_paths(split, root)
    images, labels = read_idx(image_path), read_idx(label_path)
    if len(images) != len(labels):
        raise ValueError(f"{split}: {len(images)} images but {len(labels)} labels")
    return images, labels.astype(np.int32)


def load_labels(split: str, root: str | None = None) -> np.ndarray:
    """The labels int32 [N] of "train" or "test", without reading the images."""
    return read_idx(_split_paths(split, root)[1]).astype(np.int32)


def count_examples(split: str, root: str | None = None) -> int:
    """Reads only the label file's header."""
    _, label_path = _split_paths(split, root)
    with gzip.open(label_path, "rb") as stream:
        return _read_header(stream, label_path)[0]


def make_dataset(split: str, root: str | None = None) -> tf.data.Dataset:
    """Examples ``{"image": uint8 [28, 28, 1], "label": int32}`` in file order."""
    images, labels = load_arrays(split, root)
    return tf.data.Dataset.from_tensor_slices({"image": images[..., None], "label": labels})
