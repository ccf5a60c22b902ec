import json

import numpy as np
import pytest
import tensorflow_datasets as tfds
from sklearn.metrics import average_precision_score

from sfocus_tf.evaluation import metrics
from sfocus_tf.data import image_folder
from sfocus_tf.evaluation.evaluate import evaluate_run
from sfocus_tf.configs.train_config import TrainConfig
from sfocus_tf.training.train import train_and_evaluate


def test_average_precision_matches_scikit_learn(rng):
    scores = rng.normal(size=(50, 6))
    labels = (rng.random((50, 6)) < 0.3).astype(int)
    labels[0] = 1
    for c in range(6):
        assert metrics.average_precision(scores[:, c], labels[:, c]) == pytest.approx(
            average_precision_score(labels[:, c], scores[:, c]))
    expected = np.mean([average_precision_score(labels[:, c], scores[:, c]) for c in range(6)])
    assert metrics.mean_average_precision(scores, labels) == pytest.approx(expected)


def test_attention_summary_reports_empty_maps_and_boxes():
    maps = np.zeros((4, 2, 2), np.float32)
    maps[0, 0, 0], maps[1, 1, 1] = 1.0, 1.0
    arrays = {**{key: np.full(4, 0.5) for key in metrics.ATTENTION_MEANS.values()},
              "overlap": np.array([0.1, 0.3, 0.0, 0.0]), "consistency": np.ones(4),
              "empty_target": np.array([0.0, 0.0, 1.0, 1.0]),
              "empty_confusing": np.array([1.0, 0.0, 0.0, 0.0]),
              "top20_overlap_chance": np.array([0.2, np.nan, 0.4, np.nan]),
              "target_last": maps, "ink_last": np.ones((4, 2, 2)), "image_hw": (2, 2),
              "boxes": np.tile([[[0.0, 0.0, 0.5, 0.5]]], (4, 1, 1)),
              "logits": np.eye(4, 3), "labels": np.array([0, 1, 2, 0]),
              "target_class": np.array([0, 1, 2, 0]), "confusing_class": np.array([1, 0, 0, 2])}
    totals = metrics.MetricTotals(multi_label=False)
    totals.add(arrays)
    summary = totals.attention_summary()
    assert summary["empty_target_map"] == 0.5 and summary["empty_confusing_map"] == 0.25
    assert summary["attention_overlap"] == pytest.approx(0.1)
    assert summary["pointing_game"] == 0.25  # only map 0 peaks in its box; 2, 3 are empty
    assert summary["energy_inside_box"] == 0.25
    assert summary["top20_overlap_chance"] == pytest.approx(0.3)  # NaNs left out
    assert summary["faithfulness_drop"] == 0.5


def test_per_class_accuracy_and_upper_body_confusions_by_hand():
    names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt"]
    labels = np.array([0, 0, 6, 6, 6, 2, 4, 1, 1])
    predicted = np.array([0, 6, 6, 0, 1, 4, 4, 1, 0])
    totals = metrics.MetricTotals(multi_label=False, class_names=names)
    for part in (slice(0, 4), slice(4, 9)):  # two batches
        zeros = np.zeros(len(labels[part]))
        totals.add({**{key: zeros for key in metrics.ATTENTION_MEANS.values()},
                    "logits": np.eye(7)[predicted[part]], "labels": labels[part],
                    "target_class": labels[part], "confusing_class": labels[part] * 0 + 3})
    summary = totals.summary()
    assert summary["per_class_accuracy"] == [0.5, 0.5, 0.0, None, 1.0, None, 1 / 3]
    # rows true, columns predicted: T-shirt/top, Pullover, Coat, Shirt
    assert summary["upper_body_confusions"] == {
        "classes": ["T-shirt/top", "Pullover", "Coat", "Shirt"],
        "counts": [[1, 0, 0, 1], [0, 0, 1, 0], [0, 0, 1, 0], [1, 0, 0, 1]]}
    assert "upper_body_confusions" not in metrics.MetricTotals(False, names[:3]).class_summary()
    assert metrics.confusion_counts(np.array([2]), np.array([0]), (0, 2), 3).tolist() == \
        [[0, 0], [1, 0]]


def test_top_k_accuracy(rng):
    logits = rng.normal(size=(40, 7))
    labels = rng.integers(0, 7, 40)
    ranks = (logits > logits[np.arange(40), labels][:, None]).sum(axis=1)
    for k in (1, 3, 5):
        assert metrics.top_k_accuracy(logits, labels, k) == pytest.approx(np.mean(ranks < k))


def test_confused_pairs_counts_and_overlap():
    true = np.array([0, 0, 0, 1, 1, 2])
    confusing = np.array([1, 1, 2, 0, 0, 0])
    predicted = np.eye(3, dtype=bool)[[1, 0, 0, 0, 1, 2]]
    overlap = np.array([0.2, 0.4, 0.9, 0.1, 0.3, 0.5])
    pairs = metrics.confused_pairs(true_class=true, confusing_class=confusing,
                                      predicted=predicted, overlap=overlap)
    assert pairs[0] == {"true": 0, "confused_with": 1, "examples": 2, "errors": 1,
                        "mean_overlap": pytest.approx(0.3)}
    assert pairs[1]["true"] == 1 and pairs[1]["errors"] == 1
    assert {(p["true"], p["confused_with"]) for p in pairs} == {(0, 1), (1, 0), (0, 2), (2, 0)}


@pytest.mark.parametrize("dataset, metric", [("caltech_birds2011", "accuracy"),
                                             ("voc/2012", "mAP")])
def test_evaluate_run_end_to_end_on_mock_data(tmp_path, dataset, metric):
    # 8 mock examples of 200 birds leave no class two examples to hold one out
    config = TrainConfig(dataset=dataset, model="resnet8", image_size=32, epochs=1,
                         steps_per_epoch=2, eval_steps=1, batch_size=4, attention_images=2,
                         full_training_set=dataset == "caltech_birds2011")
    with tfds.testing.mock_data(num_examples=8):
        train_and_evaluate(config, str(tmp_path / "run"))
        results = evaluate_run(str(tmp_path / "run"), str(tmp_path / "eval"), batch_size=4,
                               num_overlays=4)
    saved = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert saved[metric] == pytest.approx(results[metric]) and 0 <= results[metric] <= 1
    assert results["examples"] == 8
    for key in ("attention_overlap", "attention_consistency", "energy_inside_box",
                "pointing_game", "empty_target_map", "empty_confusing_map",
                "attention_overlap_chance", "attention_overlap_inner", "top20_overlap",
                "top20_overlap_chance", "peak_distance", "peak_distance_chance",
                "empty_target_map_inner", "empty_confusing_map_inner"):
        assert 0.0 <= results[key] <= 1.0, key
    for key in ("faithfulness_drop", "faithfulness_drop_random"):
        assert -1.0 <= results[key] <= 1.0, key
    assert ("per_class_accuracy" in results) == (metric == "accuracy")
    assert results["most_confused_pairs"]
    assert (tmp_path / "eval" / "overlays.png").stat().st_size > 0
    assert "| true | confused with |" in (tmp_path / "eval" / "eval.md").read_text()


def test_bad_images_are_skipped_in_training_and_evaluation_when_asked(tmp_path, capfd):
    from test_data import write_folder_with_bad_files
    root = write_folder_with_bad_files(tmp_path / "folder")
    config = TrainConfig(dataset="image_folder", data_dir=root, model="resnet8", image_size=8,
                         epochs=1, steps_per_epoch=1, batch_size=4, attention_images=2,
                         skip_bad_images=True)
    train_and_evaluate(config, str(tmp_path / "run"))
    assert "skipped 2 of" in capfd.readouterr().err  # both bad files fall in train here
    readable = [p for p in image_folder.list_split(root, "train")[0]
                if "truncated" not in p and "garbage" not in p]
    results = evaluate_run(str(tmp_path / "run"), str(tmp_path / "eval"), split="train_all",
                           batch_size=4, num_overlays=2)  # the run's own setting: skip
    assert results["examples"] == len(readable)
    with pytest.raises(ValueError, match="cannot be decoded"):
        evaluate_run(str(tmp_path / "run"), str(tmp_path / "eval"), split="train",
                     skip_bad_images=False)
