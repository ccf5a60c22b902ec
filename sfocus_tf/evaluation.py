"""Accuracy and attention quality of a trained model over a dataset.

Pure NumPy metrics (testable on their own) and one loop, ``collect``, that
feeds them: accuracy (top-1, top-5) or mAP, attention overlap of the true and the
confusing class, cross-layer consistency, localisation inside ground-truth boxes
(share of attention energy, pointing game), and the most confused class pairs.
"""

from __future__ import annotations

import collections
import os

import keras
import numpy as np
import tensorflow as tf

from sfocus_tf import data, losses, overlays
from sfocus_tf.attention import attention_maps
from sfocus_tf.config import GRADCAM_READING
from sfocus_tf.files import atomic_path, exists, local_copy, makedirs, read_json, write_json


def attention_statistics(model, images, labels) -> dict:
    """Per-example attention overlap (true vs confusing class, last layer, no mask),
    cross-layer consistency and empty maps, plus the maps themselves.

    Every model is measured with standard Grad-CAM (``GRADCAM_READING``: the logit,
    mean gradient weights, relu, max normalisation), whatever reading it trained with:
    a reading that redefines the map must not improve its own scores by doing so.
    """
    maps = attention_maps(model, images, labels, reading=GRADCAM_READING)
    cfg = model.sfocus_config
    mask = losses.soft_mask(maps["target_last"], cfg.sigma, cfg.omega)
    return dict(maps,
                overlap=losses.attention_overlap(maps["target_last"], maps["confusing_last"]),
                consistency=losses.attention_consistency(maps["target_inner"], mask),
                empty_target=losses.empty_maps(maps["target_last"]),
                empty_confusing=losses.empty_maps(maps["confusing_last"]))


# -- localisation -----------------------------------------------------------------

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

def top_k_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    top = np.argsort(-logits, axis=1)[:, :k]
    return float(np.mean((top == labels[:, None]).any(axis=1)))


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


def confused_pairs(true_class, confusing_class, predicted, overlap, top: int = 10) -> list:
    """The (true, confusing) class pairs seen most often, with how often the model
    predicted the confusing class (``predicted``: [B, N] booleans) and the pair's
    mean attention overlap."""
    groups = collections.defaultdict(list)
    for index, pair in enumerate(zip(true_class.tolist(), confusing_class.tolist())):
        groups[pair].append(index)
    rows = [{"true": t, "confused_with": c, "examples": len(idx),
             "errors": int(np.sum(predicted[idx, c])),
             "mean_overlap": float(np.mean(overlap[idx]))}
            for (t, c), idx in groups.items()]
    rows.sort(key=lambda row: (-row["errors"], -row["examples"], row["true"]))
    return rows[:top]


# -- the loop -----------------------------------------------------------------

def collect(model, dataset, steps: int | None = None) -> dict:
    """Runs the model and its attention over ``dataset`` (batches of (images, labels)
    or (images, labels, boxes)); returns per-example arrays."""
    if steps is not None:
        dataset = dataset.take(steps)
    parts = collections.defaultdict(list)
    for batch in dataset:
        images, labels = batch[0], batch[1]
        stats = attention_statistics(model, images, labels)
        parts["logits"].append(stats["logits"].numpy())
        parts["labels"].append(labels.numpy())
        for key in ("overlap", "consistency", "target_class", "confusing_class",
                    "target_last", "confusing_last", "empty_target", "empty_confusing"):
            parts[key].append(stats[key].numpy())
        if len(batch) > 2:
            boxes = batch[2]
            if isinstance(boxes, dict):  # several boxes per image: keep the target's
                same = boxes["labels"].numpy() == stats["target_class"].numpy()[:, None]
                parts["boxes"].append(boxes["boxes"].numpy() * same[..., None])
            else:
                parts["boxes"].append(boxes.numpy()[:, None, :])
        parts["image_hw"] = [images.shape[1:3]]
    return {key: (np.concatenate(value) if key != "image_hw" else value[0])
            for key, value in parts.items()}


def summarise(arrays: dict, multi_label: bool, class_names=None) -> dict:
    logits, labels = arrays["logits"], arrays["labels"]
    name = (lambda c: class_names[c]) if class_names else str  # noqa: E731
    results = {"examples": int(len(logits)), **attention_summary(arrays)}
    if multi_label:  # a class is predicted when its sigmoid passes 0.5
        results["mAP"] = mean_average_precision(logits, labels)
        predicted, true_class = logits > 0, arrays["target_class"]
    else:
        predicted = np.eye(logits.shape[1], dtype=bool)[logits.argmax(axis=1)]
        true_class = labels
        results["accuracy"] = top_k_accuracy(logits, labels, 1)
        if logits.shape[1] >= 5:
            results["top5_accuracy"] = top_k_accuracy(logits, labels, 5)
    pairs = confused_pairs(true_class, arrays["confusing_class"], predicted, arrays["overlap"])
    for row in pairs:
        row["true"], row["confused_with"] = name(row["true"]), name(row["confused_with"])
    results["most_confused_pairs"] = pairs
    return results


def evaluate(model, dataset: tf.data.Dataset, steps: int | None = None,
             attention_dataset: tf.data.Dataset | None = None) -> dict:
    """Test metrics for training runs: the objective's terms and accuracy
    (``model.evaluate`` on ``dataset``) plus the attention summary (overlap,
    consistency, empty maps) on ``attention_dataset``, the same examples with their
    boxes where the data has them (localisation is then reported too)."""
    if steps is not None:
        dataset = dataset.take(steps)
    results = {f"test_{k}": float(v) for k, v in
               model.evaluate(dataset, return_dict=True, verbose=0).items()}
    arrays = collect(model, dataset if attention_dataset is None else attention_dataset, steps)
    results.update(attention_summary(arrays), test_examples=len(arrays["overlap"]))
    return results


def attention_summary(arrays: dict) -> dict:
    """Mean overlap, consistency and empty-map shares of ``collect``'s arrays, with
    the share of attention inside the boxes and the pointing game where there are
    boxes."""
    results = {"attention_overlap": float(arrays["overlap"].mean()),
               "attention_consistency": float(arrays["consistency"].mean()),
               # A map that is zero everywhere (relu of a negative Grad-CAM) overlaps
               # nothing: the cheapest way to satisfy the separability loss.
               "empty_target_map": float(arrays["empty_target"].mean()),
               "empty_confusing_map": float(arrays["empty_confusing"].mean())}
    if "boxes" in arrays:
        height, width = arrays["image_hw"]
        maps = overlays.upsample(arrays["target_last"], height, width)
        masks = box_masks(arrays["boxes"], height, width)
        results["energy_inside_box"] = float(energy_inside(maps, masks).mean())
        results["pointing_game"] = float(pointing_game(maps, masks).mean())
    return results


def markdown_report(results: dict, title: str) -> str:
    lines = [f"# {title}", "", "| metric | value |", "|---|---|"]
    for key, value in results.items():
        if isinstance(value, float):
            lines.append(f"| {key} | {value:.4f} |")
    pairs = results.get("most_confused_pairs", [])
    if pairs:
        lines += ["", "Most confused class pairs (true class, the class it is most often "
                      "confused with):", "",
                  "| true | confused with | examples | misclassified as it | mean overlap |",
                  "|---|---|---|---|---|"]
        lines += [f"| {p['true']} | {p['confused_with']} | {p['examples']} | {p['errors']} "
                  f"| {p['mean_overlap']:.4f} |" for p in pairs]
    return "\n".join(lines) + "\n"


def load_run(workdir: str):
    """``(config dict, model)`` of a finished training run."""
    config = read_json(os.path.join(workdir, "config.json"))
    model_path = os.path.join(workdir, "model.keras")
    if config is None or not exists(model_path):
        raise FileNotFoundError(f"{workdir} holds no finished run (config.json, model.keras)")
    with local_copy(model_path) as path:  # any tf.io.gfile file system
        return config, keras.models.load_model(path)


def evaluate_run(workdir, output_dir, split=None, data_dir=None, eval_steps=None,
                 batch_size=64, num_overlays=16) -> dict:
    """``sfocus-eval``: evaluates a finished training run's ``model.keras`` and writes
    ``eval.json``, ``eval.md`` and ``overlays.png`` into ``output_dir``."""
    config, model = load_run(workdir)
    data_dir = data_dir or config["data_dir"]
    preset = data.get_preset(config["dataset"], image_size=config["image_size"],
                             data_dir=data_dir)
    load = lambda boxes: data.load(config["dataset"], split, batch_size, training=False,  # noqa
                                   data_dir=data_dir, image_size=config["image_size"],
                                   with_boxes=boxes)
    arrays = collect(model, load(preset.has_boxes), eval_steps)
    names = data.class_names(config["dataset"], data_dir=data_dir)
    results = summarise(arrays, preset.multi_label, names)
    results.update(dataset=config["dataset"], split=split or preset.test_split)
    makedirs(output_dir)
    write_json(os.path.join(output_dir, "eval.json"), results)
    with atomic_path(os.path.join(output_dir, "eval.md"), ".md") as temporary:
        with open(temporary, "w") as f:
            f.write(markdown_report(
                results, f"{config['dataset']} ({results['split']}): {workdir}"))
    images, labels = data.first_examples(load(False), num_overlays)
    overlays.save_png(os.path.join(output_dir, "overlays.png"),
                      overlays.render(model, images, labels, names))
    return results
