"""Accuracy and attention quality of a trained model over a dataset.

One loop, ``accumulate``, runs the model and its attention batch by batch and adds
each batch to ``metrics.MetricTotals`` (the NumPy metrics): accuracy (top-1,
top-5, per class) or mAP, attention overlap of the true and the confusing class (soft,
top-20 % and peak distance, each with its chance level; ``attention_metrics``),
cross-layer consistency, empty maps, faithfulness (the probability lost when the map's
top positions are erased, against random ones), localisation inside ground-truth
boxes (share of attention energy, pointing game, each beside the levels of maps that
learnt nothing; ``localisation``), and the most confused class
pairs. Memory stays that of one batch,
whatever the size of the dataset; a progress bar counts the batches. ``evaluate_run``
(``sfocus-eval``) runs it over a finished run's test data and hands the results to
``eval_report``, which writes them.
"""

from __future__ import annotations

import functools
import sys
import weakref

import keras
import numpy as np
import tensorflow as tf

from sfocus_tf import data
from sfocus_tf.evaluation import attention_metrics, localisation, overlays, report
from sfocus_tf.modeling import losses
from sfocus_tf.configs import run_dir
from sfocus_tf.modeling.gradcam import attention_maps, shown_reading
from sfocus_tf.evaluation.metrics import MetricTotals


# The soft mask of the standard reading: every model's consistency is scored with the
# same mask, whatever sigma and omega it trained with (a model must not move its own
# yardstick).
MEASURED_SIGMA, MEASURED_OMEGA = 0.55, 100.0
# A map is empty when its raw peak is below this share of the other class's raw peak
# at the same layer: a threshold relative to the other map, since raw Grad-CAM values
# scale with the features.
EMPTY_RATIO = 1e-3


def attention_statistics(model, images, labels) -> dict:
    """Per-example attention overlap (true vs confusing class, no mask) at both layers,
    cross-layer consistency and empty maps at both layers, plus the maps themselves
    and their raw peaks.

    Every model is measured with standard Grad-CAM (``GRADCAM_READING``: the logit,
    mean gradient weights, relu, max normalisation), whatever reading it trained with:
    a reading that redefines the map must not improve its own scores by doing so.
    Traced once per model: eager TF ops leave garbage per call (e.g. a class per
    einsum), which would make evaluation memory creep up with the number of batches.
    """
    return _traced(model, _statistics)(images, labels)


_TRACED = weakref.WeakKeyDictionary()  # model -> {function: its traced version}


def _traced(model, function):
    per_model = _TRACED.setdefault(model, {})
    if function not in per_model:
        model_ref = weakref.ref(model)  # the cache must not keep the model alive
        per_model[function] = tf.function(lambda *args: function(model_ref(), *args),
                                          reduce_retracing=True)
    return per_model[function]


def relatively_empty(peak, other_peak, ratio: float = EMPTY_RATIO) -> tf.Tensor:
    """1.0 where a map's raw peak is below ``ratio`` times the other class's raw peak,
    or is 0 (so of two all-zero maps both are empty), else 0.0."""
    empty = tf.logical_or(peak <= 0, peak < ratio * other_peak)
    return tf.cast(empty, tf.float32)


def _statistics(model, images, labels) -> dict:
    maps = attention_maps(model, images, labels, reading=shown_reading())
    mask = losses.consistency_mask(maps["target_last"], maps["target_inner"].shape[1:3],
                                   sigma=MEASURED_SIGMA, omega=MEASURED_OMEGA)
    out = dict(maps, consistency=losses.attention_consistency(
        inner_target_map=maps["target_inner"], last_mask=mask))
    for layer, suffix in (("last", ""), ("inner", "_inner")):
        target, confusing = f"target_{layer}", f"confusing_{layer}"
        out[f"overlap{suffix}"] = losses.attention_overlap(target_map=maps[target],
                                                           confusing_map=maps[confusing])
        target_peak, confusing_peak = maps[f"{target}_peak"], maps[f"{confusing}_peak"]
        out[f"empty_target{suffix}"] = relatively_empty(target_peak, confusing_peak)
        out[f"empty_confusing{suffix}"] = relatively_empty(confusing_peak, target_peak)
    return out


def _logits(model, images):
    return model(images, training=False)


def faithfulness(model, images, arrays: dict, rng: np.random.Generator) -> dict:
    """Per example, how much the true class's probability drops when the pixels under
    the top ``REMOVED_SHARE`` of its last-layer map are set to 0, and when as many
    random positions are: both masked copies in one more forward pass, in inference
    mode."""
    removed = attention_metrics.top_positions(arrays["target_last"],
                                              attention_metrics.REMOVED_SHARE)
    random = attention_metrics.random_positions_like(removed, rng)
    erased = np.concatenate([attention_metrics.erase(images, removed),
                             attention_metrics.erase(images, random)])
    top_logits, random_logits = np.split(_traced(model, _logits)(erased).numpy(), 2)
    probability = functools.partial(attention_metrics.class_probability,
                                    classes=arrays["target_class"],
                                    multi_label=model.sfocus_config.multi_label)
    before = probability(arrays["logits"])
    return {"faithfulness_drop": before - probability(top_logits),
            "faithfulness_drop_random": before - probability(random_logits)}


# -- the loop -----------------------------------------------------------------

def progress_verbosity() -> int:
    """Keras' ``verbose``: a live bar on a terminal, one line per pass in a log file."""
    return 1 if sys.stdout.isatty() else 2


STATISTICS = ("logits", "target_class", "confusing_class", "target_last", "confusing_last",
              "overlap", "overlap_inner", "consistency", "empty_target", "empty_confusing",
              "empty_target_inner", "empty_confusing_inner")


def batch_arrays(model, batch, rng: np.random.Generator | None = None) -> dict:
    """One batch of (images, labels) or (images, labels, boxes) -> the NumPy arrays
    ``MetricTotals.add`` takes. ``rng`` draws the faithfulness check's random positions
    (by default seeded with ``FAITHFULNESS_SEED``)."""
    images, labels = batch[0], batch[1]
    stats = attention_statistics(model, images, labels)
    arrays = {key: stats[key].numpy() for key in STATISTICS}
    arrays.update(attention_metrics.map_statistics(arrays["target_last"],
                                                   arrays["confusing_last"]))
    if rng is None:
        rng = np.random.default_rng(attention_metrics.FAITHFULNESS_SEED)
    arrays.update(faithfulness(model, np.asarray(images), arrays, rng))
    arrays.update(labels=np.asarray(labels), image_hw=tuple(images.shape[1:3]))
    if len(batch) > 2:
        arrays.update(box_arrays(batch[2], arrays, np.asarray(images)))
    return arrays


def box_arrays(boxes, arrays: dict, images: np.ndarray) -> dict:
    """The localisation inputs of one batch (``localisation.LocalisationTotals.add``):
    the image's ink at the last layer's resolution, the target class's boxes and, where
    the boxes carry labels, the other classes' boxes and whether the confusing class is
    one of them. ``boxes``: [B, 4] (one object) or {"boxes": [B, K, 4], "labels": [B, K]}."""
    out = {"ink_last": localisation.ink_maps(images, arrays["target_last"].shape[1:3])}
    if not isinstance(boxes, dict):
        return dict(out, boxes=np.asarray(boxes)[:, None, :])
    box_labels, target = np.asarray(boxes["labels"]), arrays["target_class"]
    out["boxes"], out["distractor_boxes"] = localisation.split_boxes(
        np.asarray(boxes["boxes"]), box_labels, target)
    out["confusing_is_distractor"], out["confusing_is_distractor_chance"] = (
        localisation.confusing_is_distractor(box_labels, target, arrays["confusing_class"],
                                             num_classes=arrays["logits"].shape[1]))
    return out


def _batch_count(dataset, steps):
    cardinality = int(dataset.cardinality())
    return steps if steps is not None else (cardinality if cardinality >= 0 else None)


def accumulate(model, dataset, *, steps: int | None = None, verbose: int | None = None,
               class_names=None) -> MetricTotals:
    """Runs the model and its attention over ``dataset`` (batches of (images, labels)
    or (images, labels, boxes)), one batch at a time, with a progress bar. The
    faithfulness check's random positions come from one generator seeded with
    ``FAITHFULNESS_SEED``: the same dataset gives the same figures."""
    if steps is not None:
        dataset = dataset.take(steps)
    totals = MetricTotals(model.sfocus_config.multi_label, class_names)
    rng = np.random.default_rng(attention_metrics.FAITHFULNESS_SEED)
    verbose = progress_verbosity() if verbose is None else verbose
    shown = "attention_overlap"  # the running mean so far, not a mean of means
    progress = keras.utils.Progbar(_batch_count(dataset, steps), verbose=verbose,
                                   stateful_metrics=[shown], unit_name="batch")
    step = 0
    for step, batch in enumerate(dataset, start=1):
        totals.add(batch_arrays(model, batch, rng))
        progress.update(step, [(shown, totals.attention_summary()[shown])])
    if step != progress.target:  # a size unknown until now (reaching it printed the end)
        progress.target = step
        progress.update(step, finalize=True)
    return totals


def evaluate(model, dataset: tf.data.Dataset, *, steps: int | None = None,
             attention_dataset: tf.data.Dataset | None = None,
             verbose: int | None = None, prefix: str = "test", class_names=None) -> dict:
    """Test metrics for training runs: the objective's terms and accuracy
    (``model.evaluate`` on ``dataset``) plus the attention summary (overlaps with their
    chance levels, consistency, empty maps, faithfulness) and the per-class accuracy
    (``MetricTotals.class_summary``, prefixed) on ``attention_dataset``, the same
    examples with their boxes where the data has them (localisation is then reported
    too). Both passes show progress."""
    verbose = progress_verbosity() if verbose is None else verbose
    if steps is not None:
        dataset = dataset.take(steps)
    results = {f"{prefix}_{k}": float(v) for k, v in
               model.evaluate(dataset, return_dict=True, verbose=verbose).items()}
    totals = accumulate(model, dataset if attention_dataset is None else attention_dataset,
                        steps=steps, verbose=verbose, class_names=class_names)
    # The test split's attention figures keep their historical unprefixed names.
    results.update({name if prefix == "test" else f"{prefix}_{name}": value
                    for name, value in totals.attention_summary().items()})
    results.update({f"{prefix}_{name}": value for name, value in
                    dict(totals.class_summary(), examples=totals.examples).items()})
    return results


@data.labels_read_once()
def evaluate_run(workdir, output_dir, *, split=None, data_dir=None, eval_steps=None,
                 batch_size=64, num_overlays=16, skip_bad_images=None) -> dict:
    """``sfocus-eval``: evaluates a finished training run's ``model.keras`` and writes
    ``eval.json``, ``eval.md`` and ``overlays.png`` into ``output_dir``
    (``eval_report``). ``skip_bad_images`` defaults to the run's own setting."""
    config, model = run_dir.load_run(workdir)
    config = config.replace(data_dir=data_dir or config.data_dir)
    if skip_bad_images is not None:
        config = config.replace(skip_bad_images=skip_bad_images)
    preset = config.preset()  # the run's one look-up of its dataset, passed down
    load = lambda boxes: data.load(  # noqa: E731
        preset, split, batch_size, training=False, data_dir=config.data_dir,
        with_boxes=boxes, skip_bad_images=config.skip_bad_images)
    names = data.class_names(preset, data_dir=config.data_dir)
    totals = accumulate(model, load(preset.has_boxes), steps=eval_steps, class_names=names)
    results = totals.summary()
    results.update(dataset=config.dataset, split=split or "test")
    images, labels, *boxes = data.first_examples(load(preset.has_boxes), num_overlays,
                                                 with_boxes=preset.has_boxes)
    report.write_report(output_dir, results,
                        title=f"{config.dataset} ({results['split']}): {workdir}",
                        overlay_grid=overlays.render(model, images, labels, names,
                                                     *boxes),
                        class_names=names)
    return results


def no_learning_levels(dataset: str, split: str | None, map_size: int, *, data_dir=None,
                       batch_size: int = 256, eval_steps: int | None = None) -> dict:
    """``sfocus-eval --levels_of``: the localisation figures that maps which learnt
    nothing reach on a split with boxes, for a model whose last-layer maps are
    ``map_size`` x ``map_size``: the ink map's and the uniform map's (the boxes' areas),
    and the chance that a random confusing class is another object's. A trained model's
    figures mean something above these; no model is read."""
    preset = data.get_preset(dataset, data_dir=data_dir)
    if not preset.has_boxes:
        raise ValueError(f"dataset {dataset!r} has no boxes: no localisation levels")
    totals = localisation.LocalisationTotals()
    batches = data.load(preset, split, batch_size, training=False, data_dir=data_dir,
                        with_boxes=True)
    for images, labels, boxes in batches.take(-1 if eval_steps is None else eval_steps):
        ink = localisation.ink_maps(np.asarray(images), (map_size, map_size))
        labels = np.asarray(labels)
        arrays = {"target_last": ink, "confusing_last": ink, "target_class": labels,
                  "confusing_class": np.full_like(labels, -1),
                  "logits": np.zeros((len(labels), preset.num_classes))}
        arrays.update(box_arrays(boxes, arrays, np.asarray(images)),
                      image_hw=tuple(images.shape[1:3]))
        totals.add(arrays)
    return {name: value for name, value in totals.summary().items()
            if name in localisation.NO_LEARNING_LEVELS}

