"""Evaluation metrics in NumPy, and ``MetricTotals``, which adds them up batch by batch.

Memory does not grow with the dataset: each batch's maps, boxes and box masks are
reduced to counts and sums before the next batch (per class: two counts a class, and
a 4x4 table of upper-body confusions). The one exception is mAP (multi-label
data), which needs every example's scores ranked per class: it keeps the [N, C] logits
and labels (80 bytes an example for VOC's 20 classes, under 0.5 MB for its validation
split), never the maps.
"""

from __future__ import annotations

import numpy as np

from sfocus_tf.evaluation.localisation import LocalisationTotals

# Per-example arrays whose means the attention summary reports, by reported name. A
# figure's chance level (``attention_metrics.chance_level``) or random baseline follows
# it: a figure means something only beside what unrelated maps score.
ATTENTION_MEANS = {
    "attention_overlap": "overlap", "attention_overlap_chance": "overlap_chance",
    "attention_overlap_inner": "overlap_inner",
    # order statistics of the maps: squaring a map, which lowers the soft overlap,
    # leaves them as they are
    "top20_overlap": "top20_overlap", "top20_overlap_chance": "top20_overlap_chance",
    "peak_distance": "peak_distance", "peak_distance_chance": "peak_distance_chance",
    "attention_consistency": "consistency",
    # A map that is zero everywhere (relu of a negative Grad-CAM) overlaps nothing: the
    # cheapest way to satisfy the separability loss.
    "empty_target_map": "empty_target", "empty_confusing_map": "empty_confusing",
    "empty_target_map_inner": "empty_target_inner",
    "empty_confusing_map_inner": "empty_confusing_inner",
    "faithfulness_drop": "faithfulness_drop",
    "faithfulness_drop_random": "faithfulness_drop_random"}
# Fashion-MNIST's four upper-body garments, the classes it confuses most.
UPPER_BODY = ("T-shirt/top", "Pullover", "Coat", "Shirt")


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


def per_class_accuracy(examples: np.ndarray, hits: np.ndarray) -> list:
    """Accuracy per class id from per-class counts of examples and of correct top-1
    predictions; None for a class without examples."""
    return [float(h / n) if n else None for n, h in zip(examples.tolist(), hits.tolist())]


def upper_body_classes(class_names) -> tuple | None:
    """The ids of ``UPPER_BODY`` in ``class_names``, or None unless it holds all four
    (Fashion-MNIST and the datasets built from it)."""
    names = list(class_names or ())
    return tuple(names.index(n) for n in UPPER_BODY) if set(UPPER_BODY) <= set(names) else None


def confusion_counts(true_class, predicted_class, classes, num_classes: int) -> np.ndarray:
    """[k, k] counts among the k ``classes``: row the true class, column the predicted
    one (examples whose true or predicted class is another are not counted)."""
    index = np.full(num_classes, -1)
    index[list(classes)] = np.arange(len(classes))
    rows, cols = index[true_class], index[predicted_class]
    kept = (rows >= 0) & (cols >= 0)
    counts = np.zeros((len(classes), len(classes)), np.int64)
    np.add.at(counts, (rows[kept], cols[kept]), 1)
    return counts


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

    ``add`` takes one batch's arrays (as ``evaluation.batch_arrays`` makes them: the
    logits, labels, target_class, confusing_class, target_last, a per-example array
    for each value of ``ATTENTION_MEANS`` and, with boxes, the [B, K, 4] boxes of the
    target class); ``attention_summary``, ``class_summary`` and ``summary`` report the
    means. A NaN in a per-example array (a figure the example has none of, e.g. a
    chance level in a batch of one) is left out of that figure's mean. ``class_names``
    names the classes (for the upper-body confusions and the class pairs).
    """

    def __init__(self, multi_label: bool, class_names=None):
        self.multi_label, self.class_names = multi_label, class_names
        self.examples = 0
        self.sums = dict.fromkeys(ATTENTION_MEANS.values(), 0.0)
        self.counts = dict.fromkeys(ATTENTION_MEANS.values(), 0)
        self.localisation = None  # a LocalisationTotals once a batch had boxes
        self.top_k = {}  # k -> hits
        self.per_class = None  # single-label: [examples, hits] per class id
        self.upper_body = None if multi_label else upper_body_classes(class_names)
        self.upper_body_counts = np.zeros((len(UPPER_BODY),) * 2, np.int64)
        self.scores, self.multi_hot = [], []  # multi-label only: for mAP
        self.pairs = {}

    def add(self, arrays: dict) -> None:
        logits, labels = arrays["logits"], arrays["labels"]
        self.examples += len(logits)
        for key in self.sums:
            values = np.asarray(arrays[key], np.float64)
            self.sums[key] += float(np.nansum(values))
            self.counts[key] += int(np.count_nonzero(~np.isnan(values)))
        if "boxes" in arrays:
            self.localisation = self.localisation or LocalisationTotals()
            self.localisation.add(arrays)
        if self.multi_label:  # a class is predicted when its sigmoid passes 0.5
            self.scores.append(logits)
            self.multi_hot.append(labels)
            predicted, true_class = logits > 0, arrays["target_class"]
        else:
            self._add_classes(logits, labels)
            predicted = np.eye(logits.shape[1], dtype=bool)[logits.argmax(axis=1)]
            true_class = labels
        count_pairs(true_class=true_class, confusing_class=arrays["confusing_class"],
                    predicted=predicted, overlap=arrays["overlap"], counts=self.pairs)

    def _add_classes(self, logits, labels) -> None:
        num_classes = logits.shape[1]
        for k in (1, 5) if num_classes >= 5 else (1,):
            self.top_k[k] = self.top_k.get(k, 0) + int(top_k_hits(logits, labels, k).sum())
        predicted = logits.argmax(axis=1)
        batch = np.stack([np.bincount(labels, minlength=num_classes),
                          np.bincount(labels[predicted == labels], minlength=num_classes)])
        self.per_class = batch if self.per_class is None else self.per_class + batch
        if self.upper_body is not None:
            self.upper_body_counts += confusion_counts(labels, predicted, self.upper_body,
                                                       num_classes)

    def attention_summary(self) -> dict:
        """Mean overlaps, peak distance, consistency, empty-map shares and faithfulness
        drops, each with its chance level or random baseline, with the share of
        attention inside the boxes and the pointing game where there were boxes. A
        figure no example had (a chance level over batches of one) is left out."""
        if not self.examples:
            raise ValueError("no examples were evaluated (empty dataset or eval_steps=0)")
        results = {name: self.sums[key] / self.counts[key]
                   for name, key in ATTENTION_MEANS.items() if self.counts[key]}
        if self.localisation is not None:
            results.update(self.localisation.summary())
        return results

    def class_summary(self) -> dict:
        """Single-label data: the accuracy per class id and, where the classes include
        ``UPPER_BODY``, their 4x4 confusion counts (rows true, columns predicted)."""
        if self.per_class is None:
            return {}
        results = {"per_class_accuracy": per_class_accuracy(*self.per_class)}
        if self.upper_body is not None:
            results["upper_body_confusions"] = {"classes": list(UPPER_BODY),
                                                "counts": self.upper_body_counts.tolist()}
        return results

    def summary(self, class_names=None) -> dict:
        """Everything ``sfocus-eval`` reports: the attention summary, accuracy (top-1,
        top-5, per class) or mAP, and the most confused class pairs (named when
        ``class_names``, by default the constructor's)."""
        results = {"examples": self.examples, **self.attention_summary()}
        if self.multi_label:
            results["mAP"] = mean_average_precision(np.concatenate(self.scores),
                                                    np.concatenate(self.multi_hot))
        else:
            results["accuracy"] = self.top_k[1] / self.examples
            if 5 in self.top_k:
                results["top5_accuracy"] = self.top_k[5] / self.examples
            results.update(self.class_summary())
        class_names = class_names or self.class_names
        name = (lambda c: class_names[c]) if class_names else str  # noqa: E731
        pairs = pair_rows(self.pairs)
        for row in pairs:
            row["true"], row["confused_with"] = name(row["true"]), name(row["confused_with"])
        results["most_confused_pairs"] = pairs
        return results
