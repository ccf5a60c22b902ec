"""The validation images held out of the training split: balanced, fixed, disjoint."""

import numpy as np
import pytest

from fake_data import write_fake_fashion
from sfocus_tf import data
from sfocus_tf.configs.train_config import TrainConfig, config_changes
from sfocus_tf.data import fashion_mnist, splits
from sfocus_tf.training.inputs import diagnostic_batches, steps_per_epoch, training_batches


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
        # known to tf.data, so Keras need not read to the end to count the batches
        assert int(load(split).cardinality()) == -(-size // 64)
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


# -- --train_examples: a class-balanced subset of "train" ------------------------------

def test_subset_is_class_balanced_fixed_and_outside_the_carve_out():
    labels = np.random.default_rng(1).integers(0, 10, 60_000)
    rest = ~splits.holdout_mask(labels, 10)
    subset = splits.subset_mask(labels, 10, 6_005, rest)
    assert subset.sum() == 6_000 and not (subset & ~rest).any()
    np.testing.assert_array_equal(np.bincount(labels[subset], minlength=10), [600] * 10)
    np.testing.assert_array_equal(subset, splits.subset_mask(labels, 10, 6_005, rest))
    np.testing.assert_array_equal(subset, splits.part_mask(labels, 10, False, "rest", 6_005))
    assert splits.SUBSET_SEED != splits.HOLDOUT_SEED
    # its own seed: not the images the carve-out's seed would pick from the rest
    assert not np.array_equal(subset, splits.subset_mask(labels, 10, 6_005, rest,
                                                         seed=splits.HOLDOUT_SEED))
    assert splits.part_size(60_000, 10, False, "rest", 6_005) == 6_000
    assert splits.part_size(60_000, 10, False, "rest", 90_000) == 55_000
    with pytest.raises(ValueError, match="one example per class"):
        splits.subset_size(9, 10)


def test_a_small_class_gives_all_it_has():
    labels = np.array([0] * 50 + [1] * 3)
    subset = splits.subset_mask(labels, 2, 20, np.ones(len(labels), bool))
    assert np.bincount(labels[subset]).tolist() == [10, 3]


def test_train_examples_subsets_train_and_leaves_validation_alone(tmp_path):
    root = write_fake_fashion(tmp_path, 200)
    load = lambda split, **kwargs: data.load(  # noqa: E731
        "fashion_mnist", split, 16, training=False, data_dir=root, **kwargs)
    as_rows = lambda images: {image.tobytes() for image in images}  # noqa: E731
    subset = images_of(load("train", train_examples=55))
    assert len(subset) == 50 == data.num_examples("fashion_mnist", "train", data_dir=root,
                                                  train_examples=55)
    np.testing.assert_array_equal(np.bincount(labels_of(load("train", train_examples=55)),
                                              minlength=10), [5] * 10)
    np.testing.assert_array_equal(subset, images_of(load("train", train_examples=55)))
    assert as_rows(subset) <= as_rows(images_of(load("train")))
    assert not as_rows(subset) & as_rows(images_of(load("validation")))
    # the same images whatever the training seed, which only shuffles them
    for seed in (3, 4):
        shuffled = images_of(load("train", train_examples=55, shuffle=True, seed=seed))
        assert as_rows(shuffled) == as_rows(subset)
        assert not np.array_equal(shuffled, subset)
    with pytest.raises(ValueError, match="'train' split only"):
        load("validation", train_examples=55)


def test_the_training_run_takes_train_examples_and_old_runs_resume(tmp_path):
    config = TrainConfig(train_examples=55, batch_size=10,
                         data_dir=write_fake_fashion(tmp_path, 200))
    assert steps_per_epoch(config, config.preset()) == 5
    assert len(list(training_batches(config, config.preset()).take(5).unbatch())) == 50
    # the per-epoch diagnostics read images the run trains on
    diagnosed = np.asarray(diagnostic_batches(config, config.preset(), None)[0][0])
    trained = images_of(data.load("fashion_mnist", "train", 16, training=False,
                                  data_dir=config.data_dir, train_examples=55))
    assert len(diagnosed) == 50
    assert {i.tobytes() for i in diagnosed} == {i.tobytes() for i in trained}
    with pytest.raises(ValueError, match="full_training_set"):
        TrainConfig(train_examples=6_000, full_training_set=True)
    with pytest.raises(ValueError, match="positive integer"):
        TrainConfig(train_examples=0)
    stored = TrainConfig().to_dict()
    del stored["train_examples"]  # a run from before the field: all of "train"
    assert config_changes(stored, TrainConfig()) == []
    assert config_changes(stored, TrainConfig(train_examples=6_000)) == [
        "train_examples (absent) -> 6000"]


def test_labels_are_read_once_within_a_run_and_afresh_after_it(tmp_path, monkeypatch):
    root = write_fake_fashion(tmp_path, 200)
    reads, read = [], fashion_mnist.load_labels
    monkeypatch.setattr(fashion_mnist, "load_labels",
                        lambda *args: reads.append(args) or read(*args))
    load = lambda split: data.load("fashion_mnist", split, 64, training=False,  # noqa: E731
                                   data_dir=root)
    with data.labels_read_once():
        train, validation = images_of(load("train")), images_of(load("validation"))
        assert data.num_examples("fashion_mnist", "validation", data_dir=root) == 20
    assert len(reads) == 1
    np.testing.assert_array_equal(images_of(load("validation")), validation)  # read again
    np.testing.assert_array_equal(images_of(load("train")), train)
    assert len(reads) == 3
