"""Cluttered Fashion-MNIST: deterministic, boxes inside the canvas, image and box agree."""

import json

import numpy as np
import pytest

from fake_data import check_canvas_pipeline, write_fake_fashion
from sfocus_tf import data
from sfocus_tf.data import cluttered
from sfocus_tf.configs.train_config import TrainConfig
from sfocus_tf.training.train import train_and_evaluate


def garments(rng, count=12):
    images = np.zeros((count, 28, 28), np.uint8)
    for image in images:  # a bright rectangle somewhere: a garment with a known box
        top, left = rng.integers(0, 14, 2)
        height, width = rng.integers(6, 14, 2)
        image[top:top + height, left:left + width] = rng.integers(100, 255)
    return images


def test_compose_is_deterministic_and_boxes_fit_their_garments(rng):
    images = garments(rng)
    canvases, boxes = cluttered.compose(images, seed=3)
    again, boxes_again = cluttered.compose(images, seed=3)
    np.testing.assert_array_equal(canvases, again)
    np.testing.assert_array_equal(boxes, boxes_again)
    assert not np.array_equal(cluttered.compose(images, seed=4)[0], canvases)
    assert canvases.shape == (12, 56, 56) and canvases.dtype == np.uint8
    assert boxes.min() >= 0.0 and boxes.max() <= 1.0
    assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
    for image, canvas, box in zip(images, canvases, boxes):
        top, left, bottom, right = np.rint(box * 56).astype(int)
        ink = np.argwhere(image > cluttered.INK)
        # the box is exactly the garment's inked extent, moved onto the canvas
        assert (bottom - top, right - left) == tuple(ink.max(0) - ink.min(0) + 1)
        oy, ox = top - ink.min(0)[0], left - ink.min(0)[1]
        window = canvas[oy:oy + 28, ox:ox + 28]
        assert window.shape == (28, 28)
        assert np.all(window >= image)  # clutter is blended under, never over the garment
        assert canvas.sum() > image.sum()  # and the clutter is there


def test_clutter_comes_from_other_garments():
    images = np.zeros((3, 28, 28), np.uint8)
    images[0, 4:24, 4:24] = 200  # only garment 0 has ink: its own canvas has no clutter
    images[1, 10:12, 10:12] = 50
    images[2, 10:12, 10:12] = 50
    canvases, _ = cluttered.compose(images, seed=0)
    assert canvases[0].max() == 200 and (canvases[0] == 200).sum() == 400


def test_dataset_with_boxes_through_the_pipeline(tmp_path):
    root = write_fake_fashion(tmp_path, 16, num_test=10)
    batches = list(data.load("fashion_mnist_cluttered", "test", 4, training=False,
                             data_dir=root, with_boxes=True))
    images, labels, boxes = (np.concatenate([b[i].numpy() for b in batches]) for i in range(3))
    canvases, expected_labels, expected_boxes = cluttered.load_arrays("test", root)
    assert images.shape == (10, 56, 56, 1) and boxes.shape == (10, 4)
    np.testing.assert_array_equal(labels, expected_labels)
    np.testing.assert_allclose(boxes, expected_boxes)
    check_canvas_pipeline("fashion_mnist_cluttered", root, canvases, train_all=16)


def test_training_reports_localisation_on_the_cluttered_set(tmp_path):
    root = write_fake_fashion(tmp_path, 16, num_test=8)
    config = TrainConfig(dataset="fashion_mnist_cluttered", data_dir=root, model="resnet8",
                         epochs=1, steps_per_epoch=2, batch_size=4, attention_images=2)
    metrics = train_and_evaluate(config, str(tmp_path / "run"))
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for key in ("energy_inside_box", "pointing_game", "empty_target_map",
                "empty_confusing_map"):
        assert 0.0 <= saved[key] <= 1.0 and saved[key] == pytest.approx(metrics[key])
    assert saved["test_examples"] == 8
