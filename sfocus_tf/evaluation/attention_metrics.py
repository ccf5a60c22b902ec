"""Attention metrics in NumPy that a sharper map cannot game, their chance levels, and
the faithfulness check's masks.

The soft overlap ``2 sum min(A, B) / sum(A + B)`` of two fixed bumps falls when both
are squared, so a lower overlap can mean sharper maps rather than separated ones. The
figures here depend only on the order of a map's values: the Dice overlap of each
map's top positions, and the distance between the two peaks. Each comes with a chance
level, the same figure for the true map of image i against the confusing map of
another image (``chance_level``): what two maps score that are not about each other.
"""

from __future__ import annotations

import math

import numpy as np

EPS = 1e-8
TOP_SHARE = 0.2  # top20_overlap binarises each map at its top 20 % of positions
REMOVED_SHARE = 0.1  # the faithfulness check removes the top 10 %
FAITHFULNESS_SEED = 0


def top_positions(maps: np.ndarray, share: float) -> np.ndarray:
    """[B, h, w] -> boolean masks of each map's ``ceil(share * h * w)`` highest
    positions that are above 0. Ties go to the earlier position in row-major order
    (a stable sort), so a map's set never depends on the sort's whims. Positions at 0
    are never taken: a relu map with few positive positions would otherwise be padded
    with the first zero positions (the top-left corner), which two unrelated sparse
    maps would share; an all-zero map marks nothing."""
    flat = maps.reshape(len(maps), -1)
    # round first: 0.1 * 30 is 3.0000000000000004 in floating point, whose ceil is 4
    count = math.ceil(round(share * flat.shape[1], 9))
    order = np.argsort(-flat, axis=1, kind="stable")[:, :count]
    marked = np.zeros(flat.shape, bool)
    np.put_along_axis(marked, order, True, axis=1)
    return (marked & (flat > 0)).reshape(maps.shape)


def dice(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``2 |A ∩ B| / (|A| + |B|)`` per example of [B, h, w] boolean masks; 0 where both
    are empty (nothing marked overlaps nothing)."""
    shared = (a & b).sum(axis=(1, 2))
    total = a.sum(axis=(1, 2)) + b.sum(axis=(1, 2))
    return np.divide(2.0 * shared, total, out=np.zeros(len(a)), where=total > 0)


def top_overlap(target: np.ndarray, confusing: np.ndarray, share: float = TOP_SHARE
                ) -> np.ndarray:
    """Dice overlap of the two maps' top ``share`` of positions (``top_positions``)."""
    return dice(top_positions(target, share), top_positions(confusing, share))


def peak_positions(maps: np.ndarray) -> np.ndarray:
    """[B, 2] (row, column) of each map's maximum, the first in row-major order on a tie."""
    flat_index = maps.reshape(len(maps), -1).argmax(axis=1)
    return np.stack(np.unravel_index(flat_index, maps.shape[1:]), axis=1)


def peak_distance(target: np.ndarray, confusing: np.ndarray) -> np.ndarray:
    """Distance between the two maps' peaks in units of the map's diagonal (between the
    centres of opposite corner positions), so 0 (same position) to 1 (opposite
    corners); 0 on a one-position map."""
    height, width = target.shape[1:]
    diagonal = math.hypot(height - 1, width - 1)
    rows, cols = (peak_positions(target) - peak_positions(confusing)).T
    return np.hypot(rows, cols) / diagonal if diagonal else np.zeros(len(target))


def soft_overlap(target: np.ndarray, confusing: np.ndarray) -> np.ndarray:
    """``2 sum min(A, B) / (sum(A + B) + eps)``: ``losses.attention_overlap`` in NumPy."""
    shared = np.minimum(target, confusing).sum(axis=(1, 2))
    return 2.0 * shared / ((target + confusing).sum(axis=(1, 2)) + EPS)


def chance_level(metric, target: np.ndarray, confusing: np.ndarray) -> np.ndarray:
    """``metric`` of the true map of image i against the confusing map of image i + 1
    of the same batch (the last image against the first): maps of two different
    images, which have nothing to do with each other. NaN for a batch of one image,
    which has no other image (``MetricTotals`` then leaves it out of the mean)."""
    if len(target) < 2:
        return np.full(len(target), np.nan)
    return metric(target, np.roll(confusing, -1, axis=0))


def map_statistics(target: np.ndarray, confusing: np.ndarray) -> dict:
    """Per-example top-20 % overlap and peak distance of a batch's last-layer maps
    [B, h, w], each with its chance level, and the soft overlap's chance level."""
    return {"top20_overlap": top_overlap(target, confusing),
            "peak_distance": peak_distance(target, confusing),
            "top20_overlap_chance": chance_level(top_overlap, target, confusing),
            "peak_distance_chance": chance_level(peak_distance, target, confusing),
            # the soft overlap itself is computed in-graph, with the other maps' figures
            "overlap_chance": chance_level(soft_overlap, target, confusing)}


# -- faithfulness: does the model need what its true-class map points at? ----------

def random_positions_like(marked: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Boolean masks with as many positions per example as ``marked`` [B, h, w] has,
    drawn uniformly without replacement."""
    flat = marked.reshape(len(marked), -1)
    ranks = rng.random(flat.shape).argsort(axis=1).argsort(axis=1)
    return (ranks < flat.sum(axis=1, keepdims=True)).reshape(marked.shape)


def erase(images: np.ndarray, marked: np.ndarray) -> np.ndarray:
    """``images`` [B, H, W, C] with the pixels under the marked map positions [B, h, w]
    set to 0 (the dataset mean after normalisation). The mask is upsampled by nearest
    neighbour: pixel r belongs to position ``floor((r + 0.5) h / H)``."""
    height, width = images.shape[1:3]
    rows = ((np.arange(height) + 0.5) * marked.shape[1] / height).astype(int)
    cols = ((np.arange(width) + 0.5) * marked.shape[2] / width).astype(int)
    keep = ~marked[:, rows][:, :, cols]
    return images * keep[..., None].astype(images.dtype)


def class_probability(logits: np.ndarray, classes: np.ndarray, multi_label: bool
                      ) -> np.ndarray:
    """Each example's probability of class ``classes[b]`` (softmax, or sigmoid for
    multi-label data); NaN where the class is -1 (no such class)."""
    logits = np.asarray(logits, np.float64)
    if multi_label:
        probabilities = 1.0 / (1.0 + np.exp(-logits))
    else:
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities = shifted / shifted.sum(axis=1, keepdims=True)
    picked = probabilities[np.arange(len(logits)), np.maximum(classes, 0)]
    return np.where(classes >= 0, picked, np.nan)
