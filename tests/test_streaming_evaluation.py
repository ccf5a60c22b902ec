"""Evaluation batch by batch: the same numbers as the full-array computation, memory
that does not grow with the dataset, and progress that shows."""

import tracemalloc

import numpy as np
import pytest
import tensorflow as tf

from sfocus_tf import SFocusConfig, SFocusModel
from sfocus_tf.evaluation import evaluate, localisation, metrics
from tiny import tiny_backbone

NUM_CLASSES = 6


def reference_summary(arrays: dict, multi_label: bool) -> dict:
    """The pre-streaming computation: every example's arrays concatenated, one
    [N, H, W] mask array, then means (the old ``evaluation.summarise``)."""
    logits, labels = arrays["logits"], arrays["labels"]
    results = {"examples": len(logits)}
    # a NaN is a figure the example has none of (a chance level in a batch of one)
    results.update({name: float(np.nanmean(arrays[key]))
                    for name, key in metrics.ATTENTION_MEANS.items()})
    if "boxes" in arrays:
        results.update(reference_localisation(arrays))
    if multi_label:
        results["mAP"] = metrics.mean_average_precision(logits, labels)
        predicted, true_class = logits > 0, arrays["target_class"]
    else:
        predicted = np.eye(logits.shape[1], dtype=bool)[logits.argmax(axis=1)]
        true_class = labels
        results["accuracy"] = metrics.top_k_accuracy(logits, labels, 1)
        results["top5_accuracy"] = metrics.top_k_accuracy(logits, labels, 5)
        results["per_class_accuracy"] = [
            float(np.mean(logits[labels == c].argmax(axis=1) == c)) if (labels == c).any()
            else None for c in range(NUM_CLASSES)]
    groups = {}
    for index, pair in enumerate(zip(true_class.tolist(), arrays["confusing_class"].tolist())):
        groups.setdefault(pair, []).append(index)
    pairs = [{"true": str(t), "confused_with": str(c), "examples": len(idx),
              "errors": int(np.sum(predicted[idx, c])),
              "mean_overlap": float(np.mean(arrays["overlap"][idx]))}
             for (t, c), idx in groups.items()]
    pairs.sort(key=lambda row: (-row["errors"], -row["examples"], row["true"]))
    results["most_confused_pairs"] = pairs[:10]
    return results


def reference_localisation(arrays: dict) -> dict:
    """The localisation figures over the whole arrays, in LocalisationTotals' order."""
    height, width = arrays["image_hw"]
    target, ink = (localisation.upsample(arrays[key], height, width)
                   for key in ("target_last", "ink_last"))
    own = localisation.box_masks(arrays["boxes"], height, width)
    energy, area = localisation.energy_inside, localisation.box_area
    pointing, normalised = localisation.pointing_game, localisation.normalised_energy
    mean = lambda values: float(np.nanmean(values))  # noqa: E731
    results = {
        "energy_inside_box": mean(energy(target, own)), "box_area": mean(area(own)),
        "energy_inside_box_normalised": mean(normalised(energy(target, own), area(own))),
        "pointing_game": mean(pointing(target, own)),
        "box_ink_energy": mean(energy(ink, own)), "box_ink_pointing": mean(pointing(ink, own))}
    if "distractor_boxes" not in arrays:
        return results
    confusing = localisation.upsample(arrays["confusing_last"], height, width)
    other = localisation.box_masks(arrays["distractor_boxes"], height, width)
    present = other.any(axis=(1, 2))
    kept = lambda values: np.where(present, values, np.nan)  # noqa: E731
    return {**results,
        "energy_in_distractor_box": mean(kept(energy(target, other))),
        "energy_in_distractor_box_normalised": mean(kept(normalised(energy(target, other),
                                                                    area(other)))),
        "confusing_energy_in_distractor_box": mean(kept(energy(confusing, other))),
        "confusing_energy_in_distractor_box_normalised": mean(kept(normalised(
            energy(confusing, other), area(other)))),
        "confusing_pointing_at_distractor": mean(kept(pointing(confusing, other))),
        "distractor_box_area": mean(kept(area(other))),
        "distractor_ink_energy": mean(kept(energy(ink, other))),
        "distractor_ink_pointing": mean(kept(pointing(ink, other))),
        "confusing_is_distractor": mean(arrays["confusing_is_distractor"]),
        "confusing_is_distractor_chance": mean(arrays["confusing_is_distractor_chance"])}


def random_batches(rng, multi_label, batches=5, size=7, hw=(12, 10), grid=(3, 4)):
    out = []
    for _ in range(batches):
        logits = rng.normal(size=(size, NUM_CLASSES)).astype(np.float32)
        labels = ((rng.random((size, NUM_CLASSES)) < 0.3).astype(np.float32) if multi_label
                  else rng.integers(0, NUM_CLASSES, size))
        if multi_label:
            labels[0] = 1.0  # every class has a positive
        maps = rng.random((size,) + grid).astype(np.float32)
        maps[0] = 0.0  # an empty map
        corners = rng.random((size, 3, 2)) * 0.6
        boxes = np.concatenate([corners, corners + 0.4], axis=-1)
        boxes[:, 2] = 0.0  # padding
        distractors = np.concatenate([corners[:, :1], corners[:, :1] + 0.3], axis=-1)
        distractors[1] = 0.0  # an image with no other object
        is_distractor = (rng.random(size) < 0.5).astype(np.float64)
        is_distractor[1] = np.nan
        out.append({"logits": logits, "labels": labels,
                    **{key: rng.random(size).astype(np.float32)
                       for key in metrics.ATTENTION_MEANS.values()},
                    **{key: (rng.random(size) < 0.2).astype(np.float32) for key in (
                        "empty_target", "empty_confusing", "empty_target_inner",
                        "empty_confusing_inner")},
                    "target_class": rng.integers(0, NUM_CLASSES, size),
                    "confusing_class": rng.integers(0, 3, size),  # repeated pairs
                    "target_last": maps, "boxes": boxes, "image_hw": hw,
                    "confusing_last": rng.random((size,) + grid).astype(np.float32),
                    "ink_last": rng.random((size,) + grid).astype(np.float32),
                    "distractor_boxes": distractors, "confusing_is_distractor": is_distractor,
                    "confusing_is_distractor_chance": np.where(np.isnan(is_distractor),
                                                               np.nan, 1 / 9)})
    out[-1]["top20_overlap_chance"][:] = np.nan  # as a batch of one image gives
    out[-2]["peak_distance_chance"][0] = np.nan
    return out


@pytest.mark.parametrize("multi_label", [False, True])
def test_batch_by_batch_equals_the_full_array_computation(rng, multi_label):
    batches = random_batches(rng, multi_label)
    totals = metrics.MetricTotals(multi_label)
    for batch in batches:
        totals.add(batch)
    whole = {key: (np.concatenate([b[key] for b in batches]) if key != "image_hw"
                   else batches[0][key]) for key in batches[0]}
    expected = reference_summary(whole, multi_label)
    got = totals.summary()
    assert list(got) == list(expected)  # same keys, same order
    pairs = got.pop("most_confused_pairs")
    expected_pairs = expected.pop("most_confused_pairs")
    assert got.pop("per_class_accuracy", None) == pytest.approx(
        expected.pop("per_class_accuracy", None))
    assert got == pytest.approx(expected, rel=1e-6)
    assert [{k: v for k, v in p.items() if k != "mean_overlap"} for p in pairs] == \
        [{k: v for k, v in p.items() if k != "mean_overlap"} for p in expected_pairs]
    assert [p["mean_overlap"] for p in pairs] == pytest.approx(
        [p["mean_overlap"] for p in expected_pairs], rel=1e-6)
    assert 0 < got["pointing_game"] < 1 and 0 < got["energy_inside_box"] < 1


def tiny_model():
    model = SFocusModel(tiny_backbone((12, 12, 3), NUM_CLASSES), NUM_CLASSES, SFocusConfig())
    model.compile("sgd", jit_compile=False)
    return model


def boxed_batches(count, size=8):
    rng = np.random.default_rng(count)
    images = rng.normal(size=(count * size, 12, 12, 3)).astype(np.float32)
    labels = rng.integers(0, NUM_CLASSES, count * size).astype(np.int32)
    corners = rng.random((count * size, 2)).astype(np.float32) * 0.5
    boxes = np.concatenate([corners, corners + 0.5], axis=-1)
    return tf.data.Dataset.from_tensor_slices((images, labels, boxes)).batch(size)


def peak_python_memory(model, dataset) -> int:
    """Peak bytes allocated by Python and NumPy while evaluating ``dataset`` (the
    dataset itself is built before measuring)."""
    tracemalloc.start()
    try:
        evaluate.accumulate(model, dataset, verbose=0).summary()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_dataset():
    model = tiny_model()
    small, large = boxed_batches(4), boxed_batches(40)
    peak_python_memory(model, small)  # warm-up: tracing and first-call caches
    small_peak = peak_python_memory(model, small)
    large_peak = peak_python_memory(model, large)
    assert large_peak < 3 * small_peak, (small_peak, large_peak)


def test_evaluation_shows_progress_and_equals_whole_batch_results(capsys):
    model = tiny_model()
    dataset = boxed_batches(3)
    totals = evaluate.accumulate(model, dataset, verbose=2)
    assert capsys.readouterr().out.count("3/3") == 1  # Keras' one line when not a TTY
    assert totals.examples == 24
    (images, labels, boxes), = dataset.unbatch().batch(24)
    whole = evaluate.batch_arrays(model, (images, labels, boxes))
    expected = reference_summary(whole, multi_label=False)
    got = totals.summary()
    for key in ("accuracy", "top5_accuracy", "attention_overlap", "pointing_game",
                "energy_inside_box", "attention_overlap_inner", "top20_overlap",
                "peak_distance", "empty_target_map_inner", "faithfulness_drop"):
        assert got[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-6), key
    evaluate.accumulate(model, dataset, verbose=0)
    assert capsys.readouterr().out == ""
    evaluate.accumulate(model, dataset.filter(lambda *batch: True), verbose=2)  # size unknown
    assert len(capsys.readouterr().out.strip().splitlines()) == 1
    # the final evaluation after training: model.evaluate's line, then the attention pass's
    results = evaluate.evaluate(model, dataset.map(lambda x, y, b: (x, y)), verbose=2,
                                  attention_dataset=dataset)
    assert capsys.readouterr().out.count("3/3") == 2
    assert results["test_examples"] == 24
    assert results["pointing_game"] == pytest.approx(got["pointing_game"])
