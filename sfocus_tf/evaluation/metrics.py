"""Evaluation metrics in NumPy, and ``MetricTotals``, which adds them up batch by batch.

Memory does not grow with the dataset: each batch's maps, boxes and box masks are
reduced to counts and sums before the next batch. The one exception is mAP (multi-label
data), which needs every example's scores ranked per class: it keeps the [N, C] logits
and labels (80 bytes an example for VOC's 20 classes, under 0.5 MB for its validation
split), never the maps.
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from sfocus_tf.modeling.maps import resize_maps

# Per-example arrays whose means the attention summary reports, by reported name.
ATTENTION_MEANS = {"attention_overlap": "overlap", "attention_consistency": "consistency",
                   # A map that is zero everywhere (relu of a negative Grad-CAM) overlaps
                   # nothing: the cheapest way to satisfy the separability loss.
                   "empty_target_map": "empty_target", "empty_confusing_map": "empty_confusing"}


# -- localisation -----------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _resizer(height: int, width: int):
    # Traced: eager tf.einsum makes a namedtuple class per call, garbage that only a
    # full collection frees, so memory would creep up with the number of batches.
    return tf.function(lambda maps: resize_maps(maps, (height, width)), reduce_retracing=True)


def upsample(maps: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of [B, h, w] maps to the image size (as ``overlays.upsample``)."""
    return _resizer(height, width)(np.asarray(maps, np.float32)).numpy()


def box_masks(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """[B, K, 4] normalised [ymin, xmin, ymax, xmax] -> [B, H, W] union masks, a pixel
    counting as inside when its centre is. All-zero boxes (padding) cover nothing."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(len(boxes), -1, 4)
    rows = (np.arange(height) + 0.5) / height
    cols = (np.arange(width) + 0.5) / width
    inside_rows = (rows[None, None, :] >= boxes[..., 0:1]) & (rows[None, None, :] <= boxes[..., 2:3])
    inside_cols = (cols[None, None, :] >= boxes[..., 1:2]) & (cols[None, None, :] <= boxes[..., 3:4])
    return (inside_rows[..., :, None] & inside_cols[..., None, :]).any(axis=1)


def energy_inside(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Share of each map's total attention that falls inside its mask (0 for an
    all-zero map)."""
    total = maps.sum(axis=(1, 2))
    inside = (maps * masks).sum(axis=(1, 2))
    return np.divide(inside, total, out=np.zeros_like(total, dtype=np.float64),
                     where=total > 0)


def pointing_game(maps: np.ndarray, masks: np.ndarray, tolerance: float = 1e-6) -> np.ndarray:
    """1 where the map's maximum lies inside the mask, else 0. A map that is zero
    everywhere points nowhere: a miss (argmax would say pixel (0, 0))."""
    flat_maps = maps.reshape(len(maps), -1)
    hits = masks.reshape(len(masks), -1)[np.arange(len(masks)), flat_maps.argmax(axis=1)]
    return (hits & (flat_maps.max(axis=1) > tolerance)).astype(np.float64)


# -- classification -------------------------------------------------------------

def top_k_hits(logits: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per example: whether the label is among the ``k`` largest logits."""
    top = np.argsort(-logits, axis=1)[:, :k]
    return (top == labels[:, None]).any(axis=1)


def top_k_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    return float(np.mean(top_k_hits(logits, labels, k)))


def average_precision(scores: np.ndarray, positives: np.ndarray) -> float:
    """Area under the precision-recall curve, step-wise (as VOC 2010+ and scikit-learn's
    ``average_precision_score``): mean precision at each positive's rank."""
    order = np.argsort(-scores, kind="stable")
    hits = positives[order].astype(bool)
    if not hits.any():
        return float("nan")
    precision_at_hit = np.cumsum(hits)[hits] / (np.flatnonzero(hits) + 1)
    return float(precision_at_hit.mean())


def mean_average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """mAP over the classes that have at least one positive."""
    per_class = [average_precision(scores[:, c], labels[:, c]) for c in range(labels.shape[1])]
    return float(np.nanmean(per_class))


def pair_rows(counts: dict, top: int = 10) -> list:
    """The ``top`` (true, confusing) class pairs of ``counts`` ({pair: [examples,
    errors, overlap sum]}, in order of first appearance), most errors first."""
    rows = [{"true": t, "confused_with": c, "examples": examples, "errors": errors,
             "mean_overlap": overlap_sum / examples}
            for (t, c), (examples, errors, overlap_sum) in counts.items()]
    rows.sort(key=lambda row: (-row["errors"], -row["examples"], row["true"]))
    return rows[:top]


def count_pairs(*, true_class, confusing_class, predicted, overlap, counts=None) -> dict:
    """Adds a batch to ``counts`` ({(true, confusing): [examples, errors, overlap
    sum]}); ``predicted`` is [B, N] booleans, an error being a prediction of the
    confusing class."""
    counts = {} if counts is None else counts
    errors = predicted[np.arange(len(confusing_class)), confusing_class]
    for t, c, error, value in zip(true_class.tolist(), confusing_class.tolist(),
                                  errors.tolist(), overlap.tolist()):
        entry = counts.setdefault((t, c), [0, 0, 0.0])
        entry[0] += 1
        entry[1] += int(error)
        entry[2] += value
    return counts


def confused_pairs(*, true_class, confusing_class, predicted, overlap, top: int = 10) -> list:
    """The (true, confusing) class pairs seen most often, with how often the model
    predicted the confusing class (``predicted``: [B, N] booleans) and the pair's
    mean attention overlap."""
    return pair_rows(count_pairs(true_class=true_class, confusing_class=confusing_class,
                                 predicted=predicted, overlap=overlap), top)


# -- batch by batch ---------------------------------------------------------------

class MetricTotals:
    """Running counts and sums of every reported metric.

    ``add`` takes one batch's arrays (as ``evaluation.batch_arrays`` makes them:
    logits, labels, overlap, consistency, empty_target, empty_confusing,
    target_class, confusing_class, target_last and, with boxes, the [B, K, 4] boxes
    of the target class); ``attention_summary`` and ``summary`` report the means.
    """

    def __init__(self, multi_label: bool):
        self.multi_label = multi_label
        self.examples = 0
        self.sums = dict.fromkeys(ATTENTION_MEANS.values(), 0.0)
        self.localisation = None  # {"energy_inside_box": sum, "pointing_game": sum}
        self.top_k = {}  # k -> hits
        self.scores, self.multi_hot = [], []  # multi-label only: for mAP
        self.pairs = {}

    def add(self, arrays: dict) -> None:
        logits, labels = arrays["logits"], arrays["labels"]
        self.examples += len(logits)
        for key in self.sums:
            self.sums[key] += float(np.sum(arrays[key], dtype=np.float64))
        if "boxes" in arrays:
            self._add_localisation(arrays["target_last"], arrays["boxes"], arrays["image_hw"])
        if self.multi_label:  # a class is predicted when its sigmoid passes 0.5
            self.scores.append(logits)
            self.multi_hot.append(labels)
            predicted, true_class = logits > 0, arrays["target_class"]
        else:
            for k in (1, 5) if logits.shape[1] >= 5 else (1,):
                self.top_k[k] = self.top_k.get(k, 0) + int(top_k_hits(logits, labels, k).sum())
            predicted = np.eye(logits.shape[1], dtype=bool)[logits.argmax(axis=1)]
            true_class = labels
        count_pairs(true_class=true_class, confusing_class=arrays["confusing_class"],
                    predicted=predicted, overlap=arrays["overlap"], counts=self.pairs)

    def _add_localisation(self, target_maps, boxes, image_hw) -> None:
        height, width = image_hw
        maps = upsample(target_maps, height, width)
        masks = box_masks(boxes, height, width)
        totals = self.localisation or {"energy_inside_box": 0.0, "pointing_game": 0.0}
        totals["energy_inside_box"] += float(energy_inside(maps, masks).sum())
        totals["pointing_game"] += float(pointing_game(maps, masks).sum())
        self.localisation = totals

    def attention_summary(self) -> dict:
        """Mean overlap, consistency and empty-map shares, with the share of attention
        inside the boxes and the pointing game where there were boxes."""
        if not self.examples:
            raise ValueError("no examples were evaluated (empty dataset or eval_steps=0)")
        results = {name: self.sums[key] / self.examples for name, key in ATTENTION_MEANS.items()}
        for name, total in (self.localisation or {}).items():
            results[name] = total / self.examples
        return results

    def summary(self, class_names=None) -> dict:
        """Everything ``sfocus-eval`` reports: the attention summary, accuracy (top-1,
        top-5) or mAP, and the most confused class pairs (named when ``class_names``)."""
        results = {"examples": self.examples, **self.attention_summary()}
        if self.multi_label:
            results["mAP"] = mean_average_precision(np.concatenate(self.scores),
                                                    np.concatenate(self.multi_hot))
        else:
            results["accuracy"] = self.top_k[1] / self.examples
            if 5 in self.top_k:
                results["top5_accuracy"] = self.top_k[5] / self.examples
        name = (lambda c: class_names[c]) if class_names else str  # noqa: E731
        pairs = pair_rows(self.pairs)
        for row in pairs:
            row["true"], row["confused_with"] = name(row["true"]), name(row["confused_with"])
        results["most_confused_pairs"] = pairs
        return results
