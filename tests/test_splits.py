"""The validation images held out of the training split: balanced, fixed, disjoint."""

import numpy as np
import pytest

from fake_data import write_fake_fashion
from sfocus_tf import data
from sfocus_tf.data import splits


def labels_of(dataset):
    return np.concatenate([batch[1].numpy() for batch in dataset])


def images_of(dataset):
    return np.concatenate([batch[0].numpy() for batch in dataset])


def test_holdout_is_class_balanced_fixed_and_capped():
    labels = np.random.default_rng(1).integers(0, 10, 60_000)
    held_out = splits.holdout_indices(labels, 10)
    assert len(held_out) == 5_000 and len(np.unique(held_out)) == 5_000
    np.testing.assert_array_equal(np.bincount(labels[held_out], minlength=10), [500] * 10)
    np.testing.assert_array_equal(held_out, splits.holdout_indices(labels, 10))
    assert not np.array_equal(held_out, splits.holdout_indices(labels, 10, seed=1))
    assert splits.holdout_size(3_060, 102) == 306  # a tenth, a multiple of the classes
    assert splits.holdout_size(60_000, 10) == 5_000


def test_small_classes_give_at_most_half_and_multi_label_draws_at_random():
    labels = np.array([0] * 40 + [1] * 3 + [2])  # 44 examples: 1 per class wanted
    held_out = splits.holdout_indices(labels, 3)
    assert np.bincount(labels[held_out], minlength=3).tolist() == [1, 1, 0]
    multi_hot = np.random.default_rng(0).integers(0, 2, (200, 5))
    held_out = splits.holdout_indices(multi_hot, 5, multi_label=True)
    assert len(held_out) == 20 and np.all(np.diff(held_out) > 0)


def test_split_names_resolve_to_the_datasets_own_splits():
    fashion, voc = data.get_preset("fashion_mnist"), data.get_preset("voc/2012")
    assert fashion.resolve_split("train") == ("train", "rest")
    assert fashion.resolve_split("validation") == ("train", "holdout")
    assert fashion.resolve_split("train_all") == ("train", None)
    assert fashion.resolve_split("test") == ("test", None)
    # VOC is tested on its tfds "validation" split: validation is carved out of train
    assert voc.resolve_split("test") == ("validation", None)
    assert voc.resolve_split("validation") == ("train", "holdout")
    assert fashion.resolve_split("train[:10%]") == ("train[:10%]", None)
    assert fashion.split_size("validation") == 5_000
    assert fashion.split_size("train") == 55_000
    assert voc.split_size("validation") == 571 and voc.split_size("test") == 5_823


def test_fashion_mnist_train_and_validation_partition_the_training_split(tmp_path):
    root = write_fake_fashion(tmp_path, 200)
    load = lambda split: data.load("fashion_mnist", split, 64, training=False,  # noqa: E731
                                   data_dir=root)
    train, validation, everything = (images_of(load(s)) for s in
                                     ("train", "validation", "train_all"))
    assert len(validation) == 20 and len(train) == 180 and len(everything) == 200
    np.testing.assert_array_equal(np.bincount(labels_of(load("validation")), minlength=10),
                                  [2] * 10)
    as_rows = lambda images: {image.tobytes() for image in images}  # noqa: E731
    assert not as_rows(train) & as_rows(validation)
    assert as_rows(train) | as_rows(validation) == as_rows(everything)
    for split, size in (("train", 180), ("validation", 20), ("train_all", 200)):
        assert data.num_examples("fashion_mnist", split, data_dir=root) == size
    # the same images whatever the training seed; training batches never hold one
    shuffled = data.load("fashion_mnist", "train", 20, training=True, seed=3, data_dir=root)
    assert not as_rows(images_of(shuffled.take(9))) & as_rows(
        images_of(data.load("fashion_mnist", "validation", 20, training=True, seed=3,
                            shuffle=False, data_dir=root)))


@pytest.mark.parametrize("name", ["cifar10", "voc/2012"])
def test_tfds_validation_is_carved_out_of_train(name):
    import tensorflow_datasets as tfds
    with tfds.testing.mock_data(num_examples=40):
        preset = data.get_preset(name, image_size=16)
        train = labels_of(data.load(preset, "train", 8, training=False))
        validation = labels_of(data.load(preset, "validation", 8, training=False))
        assert len(train) + len(validation) == 40
        assert data.num_examples(preset, "validation") == len(validation) > 0


def test_a_carve_out_with_nothing_to_hold_out_says_what_to_do(tmp_path):
    root = write_fake_fashion(tmp_path, 8)  # one example of each of 8 classes
    with pytest.raises(ValueError, match="full_training_set"):
        data.load("fashion_mnist", "validation", 4, training=False, data_dir=root)
