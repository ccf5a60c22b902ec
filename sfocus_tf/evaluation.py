"""Accuracy and attention statistics of a trained model over a dataset."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from sfocus_tf import losses
from sfocus_tf.attention import attention_maps


def attention_statistics(model, images, labels) -> dict:
    """Per-example attention overlap (true vs confusing class, last layer, no mask)
    and cross-layer consistency, as in SPEC.md "Attention quality"."""
    maps = attention_maps(model, images, labels)
    cfg = model.sfocus_config
    mask = losses.soft_mask(maps["target_last"], cfg.sigma, cfg.omega)
    return {
        "overlap": losses.attention_overlap(maps["target_last"], maps["confusing_last"]),
        "consistency": losses.attention_consistency(maps["target_inner"], mask),
        "confusing_class": maps["confusing_class"],
    }


def evaluate(model, dataset: tf.data.Dataset, steps: int | None = None) -> dict:
    """Test metrics: the objective's terms and accuracy (``model.evaluate``) plus the
    mean attention overlap and consistency over the same batches."""
    if steps is not None:
        dataset = dataset.take(steps)
    results = {f"test_{k}": float(v) for k, v in
               model.evaluate(dataset, return_dict=True, verbose=0).items()}
    overlap, consistency = [], []
    for batch in dataset:
        stats = attention_statistics(model, batch[0], batch[1])
        overlap.append(stats["overlap"].numpy())
        consistency.append(stats["consistency"].numpy())
    results["attention_overlap"] = float(np.mean(np.concatenate(overlap)))
    results["attention_consistency"] = float(np.mean(np.concatenate(consistency)))
    results["test_examples"] = int(sum(len(o) for o in overlap))
    return results
