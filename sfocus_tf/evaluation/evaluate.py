"""Accuracy and attention quality of a trained model over a dataset.

One loop, ``accumulate``, runs the model and its attention batch by batch and adds
each batch to ``metrics.MetricTotals`` (the NumPy metrics): accuracy (top-1,
top-5) or mAP, attention overlap of the true and the confusing class, cross-layer
consistency, localisation inside ground-truth boxes (share of attention energy,
pointing game), and the most confused class pairs. Memory stays that of one batch,
whatever the size of the dataset; a progress bar counts the batches. ``evaluate_run``
(``sfocus-eval``) runs it over a finished run's test data and hands the results to
``eval_report``, which writes them.
"""

from __future__ import annotations

import sys
import weakref

import keras
import tensorflow as tf

from sfocus_tf import data
from sfocus_tf.evaluation import overlays, report
from sfocus_tf.modeling import losses
from sfocus_tf.configs import run_dir
from sfocus_tf.modeling.gradcam import attention_maps, shown_reading
from sfocus_tf.evaluation.metrics import MetricTotals


def attention_statistics(model, images, labels) -> dict:
    """Per-example attention overlap (true vs confusing class, last layer, no mask),
    cross-layer consistency and empty maps, plus the maps themselves.

    Every model is measured with standard Grad-CAM (``GRADCAM_READING``: the logit,
    mean gradient weights, relu, max normalisation), whatever reading it trained with:
    a reading that redefines the map must not improve its own scores by doing so.
    Traced once per model: eager TF ops leave garbage per call (e.g. a class per
    einsum), which would make evaluation memory creep up with the number of batches.
    """
    traced = _TRACED_STATISTICS.get(model)
    if traced is None:
        model_ref = weakref.ref(model)  # the cache must not keep the model alive
        traced = tf.function(lambda x, y: _statistics(model_ref(), x, y),
                             reduce_retracing=True)
        _TRACED_STATISTICS[model] = traced
    return traced(images, labels)


_TRACED_STATISTICS = weakref.WeakKeyDictionary()


def _statistics(model, images, labels) -> dict:
    maps = attention_maps(model, images, labels, reading=shown_reading())
    cfg = model.sfocus_config
    mask = losses.soft_mask(maps["target_last"], cfg.sigma, cfg.omega)
    return dict(maps,
                overlap=losses.attention_overlap(target_map=maps["target_last"],
                                                 confusing_map=maps["confusing_last"]),
                consistency=losses.attention_consistency(inner_target_map=maps["target_inner"],
                                                         last_mask=mask),
                empty_target=losses.empty_maps(maps["target_last"]),
                empty_confusing=losses.empty_maps(maps["confusing_last"]))


# -- the loop -----------------------------------------------------------------

def progress_verbosity() -> int:
    """Keras' ``verbose``: a live bar on a terminal, one line per pass in a log file."""
    return 1 if sys.stdout.isatty() else 2


def batch_arrays(model, batch) -> dict:
    """One batch of (images, labels) or (images, labels, boxes) -> the NumPy arrays
    ``MetricTotals.add`` takes."""
    images, labels = batch[0], batch[1]
    stats = attention_statistics(model, images, labels)
    arrays = {key: stats[key].numpy() for key in (
        "logits", "overlap", "consistency", "target_class", "confusing_class", "target_last",
        "empty_target", "empty_confusing")}
    arrays.update(labels=labels.numpy(), image_hw=tuple(images.shape[1:3]))
    if len(batch) > 2:
        boxes = batch[2]
        if isinstance(boxes, dict):  # several boxes per image: keep the target's
            same = boxes["labels"].numpy() == arrays["target_class"][:, None]
            arrays["boxes"] = boxes["boxes"].numpy() * same[..., None]
        else:
            arrays["boxes"] = boxes.numpy()[:, None, :]
    return arrays


def _batch_count(dataset, steps):
    cardinality = int(dataset.cardinality())
    return steps if steps is not None else (cardinality if cardinality >= 0 else None)


def accumulate(model, dataset, *, steps: int | None = None, verbose: int | None = None
               ) -> MetricTotals:
    """Runs the model and its attention over ``dataset`` (batches of (images, labels)
    or (images, labels, boxes)), one batch at a time, with a progress bar."""
    if steps is not None:
        dataset = dataset.take(steps)
    totals = MetricTotals(model.sfocus_config.multi_label)
    verbose = progress_verbosity() if verbose is None else verbose
    shown = "attention_overlap"  # the running mean so far, not a mean of means
    progress = keras.utils.Progbar(_batch_count(dataset, steps), verbose=verbose,
                                   stateful_metrics=[shown], unit_name="batch")
    step = 0
    for step, batch in enumerate(dataset, start=1):
        totals.add(batch_arrays(model, batch))
        progress.update(step, [(shown, totals.attention_summary()[shown])])
    if step != progress.target:  # a size unknown until now (reaching it printed the end)
        progress.target = step
        progress.update(step, finalize=True)
    return totals


def evaluate(model, dataset: tf.data.Dataset, *, steps: int | None = None,
             attention_dataset: tf.data.Dataset | None = None,
             verbose: int | None = None, prefix: str = "test") -> dict:
    """Test metrics for training runs: the objective's terms and accuracy
    (``model.evaluate`` on ``dataset``) plus the attention summary (overlap,
    consistency, empty maps) on ``attention_dataset``, the same examples with their
    boxes where the data has them (localisation is then reported too). Both passes
    show progress."""
    verbose = progress_verbosity() if verbose is None else verbose
    if steps is not None:
        dataset = dataset.take(steps)
    results = {f"{prefix}_{k}": float(v) for k, v in
               model.evaluate(dataset, return_dict=True, verbose=verbose).items()}
    totals = accumulate(model, dataset if attention_dataset is None else attention_dataset,
                        steps=steps, verbose=verbose)
    summary = dict(totals.attention_summary(), examples=totals.examples)
    # The test split's attention figures keep their historical unprefixed names.
    results.update({name if prefix == "test" and name != "examples" else f"{prefix}_{name}":
                    value for name, value in summary.items()})
    return results


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
    totals = accumulate(model, load(preset.has_boxes), steps=eval_steps)
    names = data.class_names(preset, data_dir=config.data_dir)
    results = totals.summary(names)
    results.update(dataset=config.dataset, split=split or "test")
    images, labels = data.first_examples(load(False), num_overlays)
    report.write_report(output_dir, results,
                             title=f"{config.dataset} ({results['split']}): {workdir}",
                             overlay_grid=overlays.render(model, images, labels, names))
    return results
