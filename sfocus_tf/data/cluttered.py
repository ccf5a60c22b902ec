"""Cluttered Fashion-MNIST: a localisation benchmark built offline from Debian's files.

Each garment (28x28) is placed at a random position on a black 56x56 canvas that
also holds ``CLUTTER_PIECES`` small crops of other garments; its box is the tight box
of its own pixels. A classifier has to find the garment among the clutter, so the
share of attention inside the box and the pointing game measure where it looks.
Everything is drawn from a fixed seed per split: the same files give the same
dataset on every machine.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from sfocus_tf.data import fashion_mnist

CANVAS = 56
GARMENT = 28
CLUTTER_PIECES = 4
PIECE = 10  # side of a clutter crop, in pixels
PIECE_MARGIN = 4  # crops come from the middle of a garment, where there is cloth
INK = 16  # a garment pixel above this counts towards its box
SEEDS = {"train": 20191027, "test": 20191028}  # fixed: the dataset is part of the benchmark


def compose(images: np.ndarray, seed: int):
    """(canvases uint8 [N, 56, 56], boxes float32 [N, 4] normalised [ymin, xmin, ymax,
    xmax]) from garments uint8 [N, 28, 28]."""
    count = len(images)
    rng = np.random.default_rng(seed)
    offsets = rng.integers(0, CANVAS - GARMENT + 1, size=(count, 2))
    # clutter from other garments only: a shift of 1..N-1 never maps an index to itself
    sources = (np.arange(count)[:, None] + rng.integers(1, count, size=(count, CLUTTER_PIECES))) % count
    crops = rng.integers(PIECE_MARGIN, GARMENT - PIECE - PIECE_MARGIN + 1,
                         size=(count, CLUTTER_PIECES, 2))
    places = rng.integers(0, CANVAS - PIECE + 1, size=(count, CLUTTER_PIECES, 2))
    canvases = np.zeros((count, CANVAS, CANVAS), np.uint8)
    for index in range(count):
        canvas = canvases[index]
        for source, (cy, cx), (py, px) in zip(sources[index], crops[index], places[index]):
            piece = images[source, cy:cy + PIECE, cx:cx + PIECE]
            np.maximum(canvas[py:py + PIECE, px:px + PIECE], piece,
                       out=canvas[py:py + PIECE, px:px + PIECE])
        oy, ox = offsets[index]
        np.maximum(canvas[oy:oy + GARMENT, ox:ox + GARMENT], images[index],
                   out=canvas[oy:oy + GARMENT, ox:ox + GARMENT])
    return canvases, garment_boxes(images, offsets)


def garment_boxes(images: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Tight boxes of each garment's pixels above ``INK``, moved by ``offsets`` [N, 2]
    and normalised to the canvas (edges on pixel borders)."""
    return ((ink_boxes(images) + np.tile(offsets, 2)) / CANVAS).astype(np.float32)


def ink_boxes(images: np.ndarray) -> np.ndarray:
    """int [N, 4] pixel boxes [top, left, bottom, right) of each image's pixels above
    ``INK``, in the image's own coordinates."""
    ink = images > INK
    rows, cols = ink.any(axis=2), ink.any(axis=1)
    if not (rows.any(axis=1).all()):
        raise ValueError("a garment image has no pixel above the ink threshold")
    top, bottom = rows.argmax(axis=1), images.shape[1] - rows[:, ::-1].argmax(axis=1)
    left, right = cols.argmax(axis=1), images.shape[2] - cols[:, ::-1].argmax(axis=1)
    return np.stack([top, left, bottom, right], axis=1)


def load_arrays(split: str, root: str | None = None):
    """(canvases uint8 [N, 56, 56], labels int32 [N], boxes float32 [N, 4])."""
    images, labels = fashion_mnist.load_arrays(split, root)
    canvases, boxes = compose(images, SEEDS[split])
    return canvases, labels, boxes


def make_dataset(split: str, root: str | None = None, with_boxes: bool = False) -> tf.data.Dataset:
    """Examples ``{"image": uint8 [56, 56, 1], "label": int32[, "boxes": float32 [4]]}``."""
    canvases, labels, boxes = load_arrays(split, root)
    example = {"image": canvases[..., None], "label": labels}
    if with_boxes:
        example["boxes"] = boxes
    return tf.data.Dataset.from_tensor_slices(example)
