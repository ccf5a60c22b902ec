"""Duo Fashion-MNIST: exact boxes, a distractor of another class that leaves the labelled
garment three quarters visible, the same canvases every build, and runs that evaluate."""

import numpy as np
import pytest

from fake_data import check_canvas_pipeline, write_fake_fashion
from sfocus_tf import data
from sfocus_tf.configs.train_config import TrainConfig
from sfocus_tf.data import duo, fashion_mnist
from sfocus_tf.data.cluttered import INK
from sfocus_tf.evaluation import localisation, overlay_layout, overlays
from sfocus_tf.evaluation.evaluate import batch_arrays, no_learning_levels
from sfocus_tf.configs import run_dir
from sfocus_tf.training.train import train_and_evaluate


def garments(rng, count=40):
    """Bright rectangles of random sizes and places (known boxes), 10 classes."""
    images = np.zeros((count, 28, 28), np.uint8)
    for image in images:
        top, left = rng.integers(0, 16, 2)
        height, width = rng.integers(4, 13, 2)
        image[top:top + height, left:left + width] = rng.integers(100, 255)
    return images, (np.arange(count) % 10).astype(np.int32)


def alone(piece, offset):
    """``piece`` on an empty canvas at ``offset``."""
    canvas = np.zeros((duo.CANVAS, duo.CANVAS), np.uint8)
    canvas[offset[0]:offset[0] + len(piece), offset[1]:offset[1] + len(piece)] = piece
    return canvas


def ink_box(canvas):
    """The tight box of ``canvas``' pixels above the ink threshold, normalised."""
    ink = np.argwhere(canvas > INK)
    return np.concatenate([ink.min(0), ink.max(0) + 1]) / duo.CANVAS


def box_intersection(first, second):
    sides = np.minimum(first[..., 2:], second[..., 2:]) - np.maximum(first[..., :2],
                                                                      second[..., :2])
    return np.clip(sides, 0, None).prod(-1)


def box_area(box):
    return (box[..., 2:] - box[..., :2]).prod(-1)


def check_split(split: duo.Duo, images, labels, examples):
    """What every duo split must satisfy; boxes recomputed from the pixels of each
    garment's placement for ``examples``."""
    count = len(images)
    assert split.canvases.shape == (count, 40, 40) and split.boxes.shape == (count, 2, 4)
    assert split.boxes.min() >= 0.0 and split.boxes.max() <= 1.0
    assert np.all(split.boxes[..., 2:] > split.boxes[..., :2])
    np.testing.assert_array_equal(split.labels, labels)
    np.testing.assert_array_equal(split.distractor_labels, labels[split.distractors])
    assert np.all(split.distractor_labels != split.labels)
    assert np.all(split.distractors != np.arange(len(images)))
    # the distractor covers at most a quarter of the labelled garment's box
    covered = box_intersection(split.boxes[:, 0], split.boxes[:, 1])
    assert np.all(covered <= duo.MAX_COVER * box_area(split.boxes[:, 0]) + 1e-6)
    for index in examples:
        large = alone(duo.resize(images[index:index + 1], duo.LARGE)[0], split.offsets[index, 0])
        source = split.distractors[index]
        small = alone(duo.resize(images[source:source + 1], duo.SMALL)[0],
                      split.offsets[index, 1])
        np.testing.assert_array_equal(split.canvases[index], np.maximum(large, small))
        np.testing.assert_allclose(split.boxes[index, 0], ink_box(large), atol=1e-6)
        np.testing.assert_allclose(split.boxes[index, 1], ink_box(small), atol=1e-6)


def test_boxes_are_exact_and_the_distractor_covers_at_most_a_quarter(rng):
    images, labels = garments(rng)
    check_split(duo.build(images, labels, seed=5), images, labels, range(len(images)))


def test_builds_are_deterministic_and_seeds_differ(rng):
    images, labels = garments(rng)
    first, again = duo.build(images, labels, seed=5), duo.build(images, labels, seed=5)
    for field, value in first._asdict().items():
        np.testing.assert_array_equal(value, getattr(again, field), err_msg=field)
    other = duo.build(images, labels, seed=6)
    assert not np.array_equal(other.canvases, first.canvases)


def test_a_tight_fit_is_always_placed_within_the_rule():
    # a labelled garment filling its whole window and a distractor filling its own:
    # only places near the corners leave three quarters of the first in view
    images = np.full((10, 28, 28), 200, np.uint8)
    labels = np.arange(10, dtype=np.int32)
    split = duo.build(images, labels, seed=0)
    check_split(split, images, labels, range(3))


def test_one_class_has_no_distractor():
    with pytest.raises(ValueError, match="two classes"):
        duo.build(np.full((4, 28, 28), 200, np.uint8), np.zeros(4, np.int32), seed=0)


def test_the_real_test_split():
    try:
        images, labels = fashion_mnist.load_arrays("test")
    except fashion_mnist.FashionMnistNotFoundError:
        pytest.skip("Fashion-MNIST's Debian files are not installed")
    split = duo.load_arrays("test")
    assert duo.load_arrays("test") is split  # built once per process
    check_split(split, images, labels, range(0, len(images), 997))
    assert not split.canvases.flags.writeable


def test_boxes_and_box_labels_come_through_the_pipeline(tmp_path):
    root = write_fake_fashion(tmp_path, 30, num_test=12)
    batches = list(data.load("fashion_mnist_duo", "test", 5, training=False, data_dir=root,
                             with_boxes=True))
    labels = np.concatenate([batch[1].numpy() for batch in batches])
    boxes = np.concatenate([batch[2]["boxes"].numpy() for batch in batches])
    box_labels = np.concatenate([batch[2]["labels"].numpy() for batch in batches])
    split = duo.load_arrays("test", root)
    assert boxes.shape == (12, 2, 4) and split.canvases.shape == (12, 40, 40)
    np.testing.assert_array_equal(labels, split.labels)
    np.testing.assert_allclose(boxes, split.boxes)
    np.testing.assert_array_equal(box_labels, np.stack([split.labels,
                                                        split.distractor_labels], 1))
    check_canvas_pipeline("fashion_mnist_duo", root, split.canvases, train_all=30)


def test_a_duo_run_reports_localisation_in_both_boxes(tmp_path):
    root = write_fake_fashion(tmp_path, 20, num_test=8)
    config = TrainConfig(dataset="fashion_mnist_duo", data_dir=root, model="resnet8",
                         epochs=1, steps_per_epoch=2, batch_size=4, attention_images=2)
    metrics = train_and_evaluate(config, str(tmp_path / "run"))
    model = run_dir.load_run(str(tmp_path / "run"))[1]
    for key in ("energy_inside_box", "pointing_game", "validation_energy_inside_box"):
        assert 0.0 <= metrics[key] <= 1.0
    batch = next(iter(data.load("fashion_mnist_duo", "test", 4, training=False,
                                data_dir=root, with_boxes=True)))
    arrays = batch_arrays(model, batch)
    # the true class's map is scored against the labelled garment's box alone
    np.testing.assert_allclose(arrays["boxes"][:, 0], batch[2]["boxes"][:, 0])
    assert not arrays["boxes"][:, 1].any()
    # ... and the confusing class's against the distractor's
    np.testing.assert_allclose(arrays["distractor_boxes"][:, 1], batch[2]["boxes"][:, 1])
    assert not arrays["distractor_boxes"][:, 0].any()
    confusing_is_distractor = (arrays["confusing_class"]
                               == batch[2]["labels"].numpy()[:, 1]).astype(float)
    np.testing.assert_array_equal(arrays["confusing_is_distractor"], confusing_is_distractor)
    # one distractor of another class among the 9 other classes
    np.testing.assert_allclose(arrays["confusing_is_distractor_chance"], 1 / 9)
    # boxes on whole pixels: the uniform map's level is each box's exact area
    sides = metrics["box_area"], metrics["distractor_box_area"]
    test = duo.load_arrays("test", root).boxes
    areas = (test[..., 2] - test[..., 0]) * (test[..., 3] - test[..., 1])
    np.testing.assert_allclose(sides, areas.mean(axis=0), rtol=1e-5)
    for key in ("box_ink_energy", "distractor_ink_energy", "confusing_is_distractor"):
        assert 0.0 <= metrics[key] <= 1.0 and 0.0 <= metrics[f"validation_{key}"] <= 1.0
    # the overlays outline both garments' boxes
    picture = overlays.load_png(run_dir.path(str(tmp_path / "run"), run_dir.ATTENTION,
                                             run_dir.FINAL_OVERLAYS))
    for colour in overlay_layout.BOX_COLOURS.values():
        assert np.all(picture == colour, axis=-1).sum() > 100


def test_no_learning_levels_need_no_model_and_match_the_boxes(tmp_path):
    root = write_fake_fashion(tmp_path, 20, num_test=12)
    levels = no_learning_levels("fashion_mnist_duo", "test", 10, data_dir=root, batch_size=5)
    assert set(levels) == set(localisation.NO_LEARNING_LEVELS)
    boxes = duo.load_arrays("test", root).boxes
    areas = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    np.testing.assert_allclose([levels["box_area"], levels["distractor_box_area"]],
                               areas.mean(axis=0), rtol=1e-5)
    assert levels["confusing_is_distractor_chance"] == pytest.approx(1 / 9)
    # the garments are the only ink on a black canvas: the ink map finds them
    assert levels["box_ink_energy"] > levels["box_area"]
    with pytest.raises(ValueError, match="'fashion_mnist' has no boxes"):
        no_learning_levels("fashion_mnist", "test", 7, data_dir=root)
