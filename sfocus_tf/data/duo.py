"""Duo Fashion-MNIST: a labelled garment and a smaller one of another class on one canvas.

Each 40x40 canvas holds the labelled garment, resized to 24x24, and a distractor: another
image of the same split, of another class, resized to 16x16. Both are placed at random,
the distractor uniformly among the places where its tight box covers at most a quarter
of the labelled garment's, so the labelled garment always stays mostly in view. The
label is the large garment's class; the distractor is the natural most-confusing class,
so the true class's map should sit on the first box and the confusing class's map on
the second. Built offline from Debian's files with a fixed seed per split, like
``cluttered``: the same files give the same dataset on every machine.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
import tensorflow as tf
from PIL import Image

from sfocus_tf.data import fashion_mnist
from sfocus_tf.data.cluttered import ink_boxes

CANVAS = 40
LARGE = 24  # side of the labelled garment, in pixels
SMALL = 16  # side of the distractor
MAX_COVER = 0.25  # of the labelled garment's box that the distractor's box may cover
SEEDS = {"train": 20260121, "test": 20260122}  # fixed: the dataset is part of the benchmark
_CHUNK = 4096  # examples whose candidate places are weighed at once (memory: ~20 MB)


class Duo(NamedTuple):
    """One split. ``boxes``: the labelled garment's, then the distractor's, normalised
    [ymin, xmin, ymax, xmax]; ``offsets``: the top-left pixel of each one's resized image."""

    canvases: np.ndarray  # uint8 [N, 40, 40]
    labels: np.ndarray  # int32 [N]
    boxes: np.ndarray  # float32 [N, 2, 4]
    distractor_labels: np.ndarray  # int32 [N]
    distractors: np.ndarray  # int [N]: index of the distractor's image in the split
    offsets: np.ndarray  # int [N, 2, 2]: (row, col), labelled garment then distractor


def resize(images: np.ndarray, side: int) -> np.ndarray:
    """uint8 [N, side, side]. PIL's bilinear filter widens with the shrink factor (an
    antialiased resize) and works in fixed point on 8-bit images: the same bytes on
    every machine, which a float resize would not promise."""
    return np.stack([np.asarray(Image.fromarray(image).resize(
        (side, side), Image.Resampling.BILINEAR)) for image in images])


def distractor_sources(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each example, the index of another example of another class."""
    count = len(labels)
    if len(np.unique(labels)) < 2:
        raise ValueError("a duo split needs at least two classes")
    # a shift of 1..N-1 never maps an index to itself; redraw where the class is the same
    sources = (np.arange(count) + rng.integers(1, count, count)) % count
    same = np.flatnonzero(labels[sources] == labels)
    while len(same):
        sources[same] = (same + rng.integers(1, count, len(same))) % count
        same = same[labels[sources[same]] == labels[same]]
    return sources


def _overlaps(low, high, ink_low, ink_high, starts) -> np.ndarray:
    """[N, P]: the length of [low, high) shared with [ink_low, ink_high) moved by each
    of ``starts`` [P]."""
    top = np.maximum(low[:, None], ink_low[:, None] + starts)
    bottom = np.minimum(high[:, None], ink_high[:, None] + starts)
    return np.maximum(bottom - top, 0)


def place_distractors(large_boxes: np.ndarray, small_ink: np.ndarray,
                      rng: np.random.Generator) -> np.ndarray:
    """int [N, 2] top-left pixels of the distractors' windows, each drawn uniformly from
    the places where the distractor's ink box (``small_ink``, window coordinates)
    covers at most ``MAX_COVER`` of ``large_boxes`` (canvas pixels)."""
    starts = np.arange(CANVAS - SMALL + 1)
    rows = _overlaps(large_boxes[:, 0], large_boxes[:, 2], small_ink[:, 0], small_ink[:, 2],
                     starts)
    cols = _overlaps(large_boxes[:, 1], large_boxes[:, 3], small_ink[:, 1], small_ink[:, 3],
                     starts)
    areas = (large_boxes[:, 2] - large_boxes[:, 0]) * (large_boxes[:, 3] - large_boxes[:, 1])
    places = []
    for first in range(0, len(areas), _CHUNK):
        part = slice(first, first + _CHUNK)
        allowed = (rows[part, :, None] * cols[part, None, :]
                   <= MAX_COVER * areas[part, None, None]).reshape(len(areas[part]), -1)
        # A window in a corner always qualifies at these sizes; a check costs nothing.
        if not allowed.any(axis=1).all():
            raise ValueError("no place leaves the labelled garment three quarters visible")
        # The largest of uniform keys over the allowed places: a uniform choice among them.
        keys = np.where(allowed, rng.random(allowed.shape), -1.0)
        places.append(np.stack(np.divmod(keys.argmax(axis=1), len(starts)), axis=1))
    return np.concatenate(places)


def build(images: np.ndarray, labels: np.ndarray, seed: int) -> Duo:
    """The duo split of garments uint8 [N, 28, 28] with ``labels`` [N]."""
    rng = np.random.default_rng(seed)
    sources = distractor_sources(labels, rng)
    large, small = resize(images, LARGE), resize(images, SMALL)[sources]
    large_at = rng.integers(0, CANVAS - LARGE + 1, size=(len(images), 2))
    large_boxes = ink_boxes(large) + np.tile(large_at, 2)
    small_ink = ink_boxes(small)
    small_at = place_distractors(large_boxes, small_ink, rng)
    canvases = np.zeros((len(images), CANVAS, CANVAS), np.uint8)
    for canvas, pieces in zip(canvases, zip(zip(large, large_at), zip(small, small_at))):
        for piece, (top, left) in pieces:  # a maximum: neither garment hides the other
            window = canvas[top:top + len(piece), left:left + len(piece)]
            np.maximum(window, piece, out=window)
    boxes = np.stack([large_boxes, small_ink + np.tile(small_at, 2)], axis=1)
    return Duo(canvases, labels, (boxes / CANVAS).astype(np.float32), labels[sources],
               sources, np.stack([large_at, small_at], axis=1))


@functools.lru_cache(maxsize=2)
def load_arrays(split: str, root: str | None = None) -> Duo:
    """The duo split of Fashion-MNIST's "train" or "test" files, built once per process
    (a few seconds for the training split; ~100 MB kept), read-only."""
    duo = build(*fashion_mnist.load_arrays(split, root), SEEDS[split])
    for array in duo:
        array.flags.writeable = False
    return duo


def make_dataset(split: str, root: str | None = None, with_boxes: bool = False) -> tf.data.Dataset:
    """Examples ``{"image": uint8 [40, 40, 1], "label": int32[, "boxes": float32 [2, 4],
    "distractor_label": int32]}`` in file order."""
    duo = load_arrays(split, root)
    example = {"image": duo.canvases[..., None], "label": duo.labels}
    if with_boxes:
        example.update(boxes=duo.boxes, distractor_label=duo.distractor_labels)
    return tf.data.Dataset.from_tensor_slices(example)
