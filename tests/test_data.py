"""sfocus_tf.data: the real loading code, run offline on tfds mock data, on an image folder
written here, and on the Debian Fashion-MNIST files."""

import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from sfocus_tf import data
from sfocus_tf.data import fashion_mnist, image_folder
from fake_data import write_fake_fashion

BATCH = 4
MOCK_EXAMPLES = 10  # two full training batches of 4, then a ragged evaluation batch of 2


def take_all(dataset):
    return [tuple(tf.nest.map_structure(lambda t: t.numpy(), batch)) for batch in dataset]


def normalised_bounds(preset):
    mean, std = np.array(preset.mean), np.array(preset.std)
    return (0.0 - mean) / std, (1.0 - mean) / std


def denormalise(images, preset):
    return (images * np.array(preset.std) + np.array(preset.mean)) * 255.0


def fake_tfds(examples, signature):
    """For mock_data(as_dataset_fn=...): these decoded examples, for whatever split."""
    def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False):
        return tf.data.Dataset.from_generator(lambda: iter(examples),
                                              output_signature=signature)
    return as_dataset


# --- presets and names --------------------------------------------------------------------

def test_names_and_unknown_names():
    expected = {"cifar10", "cifar100", "caltech101", "caltech_birds2011", "voc/2012",
                "imagenet2012", "caltech256", "image_folder", "fashion_mnist"}
    assert expected <= set(data.names())
    with pytest.raises(ValueError, match="valid names: .*cifar10"):
        data.get_preset("cifar11")
    with pytest.raises(ValueError, match="fashion_mnist"):
        data.load("mnist", "train", 8, training=True)


def test_image_size_override_and_known_sizes():
    preset = data.get_preset("caltech101", image_size=32)
    assert preset.image_size == (32, 32, 3) and preset.eval_resize == 37  # 32 / 0.875
    assert data.get_preset("caltech101").image_size == (224, 224, 3)
    assert data.get_preset("caltech101").eval_resize == 256
    with pytest.raises(ValueError, match="channels"):
        data.get_preset("cifar10", image_size=(32, 32, 1))
    assert data.num_examples("cifar10", "train_all") == 50_000
    assert data.num_examples("cifar10", "train") == 45_000  # less the validation images
    assert data.num_examples("cifar10", "validation") == 5_000
    assert data.num_examples("voc/2012", training=False) == 5_823  # VOC evaluates on val
    with pytest.raises(ValueError, match="no bounding boxes"):
        data.load("cifar10", "train", 8, training=True, with_boxes=True)


# --- tfds datasets on mock data -----------------------------------------------------------

@pytest.mark.parametrize("name", ["cifar10", "cifar100", "caltech101", "imagenet2012"])
def test_tfds_single_label_batches(name, tmp_path):
    preset = data.get_preset(name, image_size=16 if name in ("caltech101", "imagenet2012")
                             else None)
    kwargs = dict(data_dir=str(tmp_path), manual_dir=str(tmp_path), seed=0,
                  image_size=preset.image_size)
    with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES):
        train = data.load(name, "train_all", BATCH, training=True, **kwargs)
        evaluation = data.load(name, None, BATCH, training=False, **kwargs)
        fixed_evaluation = data.load(name, None, BATCH, training=False,
                                     drop_remainder=True, **kwargs)
        train_batches, eval_batches = take_all(train), take_all(evaluation)
        assert len(take_all(fixed_evaluation)) == 2
    assert train.element_spec[0].shape == (BATCH, *preset.image_size)
    assert train.element_spec[1].shape == (BATCH,)
    assert [len(labels) for _, labels in train_batches] == [4, 4]
    assert [len(labels) for _, labels in eval_batches] == [4, 4, 2]
    low, high = normalised_bounds(preset)
    for images, labels in train_batches + eval_batches:
        assert images.dtype == np.float32 and labels.dtype == np.int32
        assert np.all(images >= low - 1e-5) and np.all(images <= high + 1e-5)
        assert images.std() > 0.1  # not a constant
        assert np.all((labels >= 0) & (labels < preset.num_classes))


def test_augmentation_is_seeded_changes_images_and_varies_per_epoch():
    def cifar(training, seed, shuffle=False):
        return data.load("cifar10", "train_all", 8, training=training, seed=seed,
                         shuffle=shuffle)

    with tfds.testing.mock_data(num_examples=8):
        first, again, other = (take_all(cifar(True, seed))[0][0] for seed in (1, 1, 2))
        plain = take_all(cifar(False, None))[0][0]
        two_epochs = cifar(True, 1)
        epoch_1, epoch_2 = take_all(two_epochs)[0][0], take_all(two_epochs)[0][0]
        shuffled_orders = [take_all(cifar(True, 5, shuffle=True))[0][1] for _ in range(2)]
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    changed = [not np.allclose(a, b) for a, b in zip(first, plain)]
    assert sum(changed) >= 6, changed  # identity (no shift, no flip) has odds 1/162
    assert not np.array_equal(epoch_1, epoch_2)
    np.testing.assert_array_equal(*shuffled_orders)
    preset = data.get_preset("cifar10")
    originals = denormalise(plain, preset)
    flips = [pad_crop_flip_of(augmented, original, pad=4)
             for augmented, original in zip(denormalise(first, preset), originals)]
    assert set(flips) == {False, True}


def pad_crop_flip_of(augmented, original, pad):
    """Whether ``augmented`` is a flipped window of the zero-padded original (fails if it is
    no window at all)."""
    padded = np.pad(original, [(pad, pad), (pad, pad), (0, 0)])
    height, width = original.shape[:2]
    for top in range(2 * pad + 1):
        for left in range(2 * pad + 1):
            window = padded[top:top + height, left:left + width]
            for flipped, candidate in ((False, window), (True, window[:, ::-1])):
                if np.allclose(candidate, augmented, atol=1e-3):
                    return flipped
    raise AssertionError("not a padded crop of the original")


def test_cub_and_voc_shapes_on_default_mock_data():
    with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES):
        for training in (True, False):
            cub = take_all(data.load("caltech_birds2011", "train_all" if training else None, BATCH,
                                     training=training,
                                     image_size=16, seed=0, with_boxes=True))
            voc = take_all(data.load("voc/2012", "train_all" if training else None, BATCH,
                                     training=training,
                                     image_size=16, seed=0, with_boxes=True))
            for images, labels, boxes in cub:
                assert images.shape[1:] == (16, 16, 3) and labels.dtype == np.int32
                assert boxes.shape == (len(labels), 4) and boxes.dtype == np.float32
                assert np.all((boxes >= 0) & (boxes <= 1)) and np.all(labels < 200)
            for images, labels, boxes in voc:
                assert labels.shape == (len(images), 20) and labels.dtype == np.float32
                assert set(np.unique(labels)) <= {0.0, 1.0} and np.all(labels.sum(1) >= 1)
                assert boxes["boxes"].shape == (len(images), 64, 4)
                assert boxes["labels"].dtype == np.int32 and boxes["labels"].min() >= -1


def test_voc_multi_hot_comes_from_the_objects():
    object_labels = [[14, 14, 2], [], [19]]
    examples = [{"image": np.full((20, 30, 3), 9 * i, np.uint8),
                 "objects": {"label": np.array(labels, np.int64),
                             "bbox": np.tile([[0.1, 0.2, 0.5, 0.6]],
                                             (len(labels), 1)).astype(np.float32)}}
                for i, labels in enumerate(object_labels)]
    signature = {"image": tf.TensorSpec([None, None, 3], tf.uint8),
                 "objects": {"label": tf.TensorSpec([None], tf.int64),
                             "bbox": tf.TensorSpec([None, 4], tf.float32)}}
    with tfds.testing.mock_data(as_dataset_fn=fake_tfds(examples, signature)):
        (_, labels, boxes), = take_all(data.load("voc/2012", "test", 3, training=False,
                                                 image_size=20, with_boxes=True))
    expected = np.zeros((3, 20), np.float32)
    expected[0, [2, 14]] = expected[2, 19] = 1.0
    np.testing.assert_array_equal(labels, expected)
    np.testing.assert_array_equal(boxes["labels"][0, :4], [14, 14, 2, -1])
    assert np.all(boxes["labels"][1] == -1)


def test_cub_boxes_follow_crops_and_flips():
    """White rectangles on black: after any crop, resize or flip, the bright pixels must lie
    in the transformed box."""
    rng = np.random.default_rng(0)
    examples = []
    for i in range(8):
        height, width = rng.integers(60, 120, size=2)
        ymin, xmin = rng.integers(0, height // 2), rng.integers(0, width // 2)
        ymax, xmax = ymin + height // 3, xmin + width // 3
        image = np.zeros((height, width, 3), np.uint8)
        image[ymin:ymax, xmin:xmax] = 255
        box = np.array([ymin / height, xmin / width, ymax / height, xmax / width], np.float32)
        examples.append({"image": image, "label": np.int64(i), "bbox": box})
    signature = {"image": tf.TensorSpec([None, None, 3], tf.uint8),
                 "label": tf.TensorSpec([], tf.int64), "bbox": tf.TensorSpec([4], tf.float32)}
    preset = data.get_preset("caltech_birds2011", image_size=32)
    with tfds.testing.mock_data(as_dataset_fn=fake_tfds(examples, signature)):
        batches = [take_all(data.load("caltech_birds2011", "train_all", 8, training=training,
                                      image_size=32, seed=seed, shuffle=False,
                                      with_boxes=True))[0]
                   for training, seed in ((False, None), (True, 0), (True, 1))]
    checked = 0
    for images, _, boxes in batches:
        for image, box in zip(denormalise(images, preset), boxes):
            box_mask = np.zeros((32, 32), bool)
            top, left, bottom, right = np.round(box * 32).astype(int)
            box_mask[top:bottom, left:right] = True
            if box_mask.sum() < 9:
                continue  # the crop cut the rectangle (almost) out
            bright = image.mean(-1) > 127
            iou = (bright & box_mask).sum() / (bright | box_mask).sum()
            assert iou > 0.6, (box, iou)
            checked += 1
    assert checked >= 16


# --- image folders ------------------------------------------------------------------------

CLASS_COLOURS = {"cat": (200, 10, 10), "ant": (10, 200, 10), "bee": (10, 10, 200)}


def write_folder(root, per_class=5):
    for class_name, colour in CLASS_COLOURS.items():
        os.makedirs(root / class_name)
        for i in range(per_class):
            size = (20 + i, 16 + 2 * i)
            image = Image.new("RGB", size, colour)
            image.save(root / class_name / f"img{i}.{'png' if i % 2 else 'jpg'}", quality=100)
    return str(root)


def _split_in_another_process(root, split):
    """The split as a fresh interpreter with another string-hash seed computes it."""
    code = ("import json, sys; from sfocus_tf.data import image_folder; "
            "print(json.dumps(image_folder.list_split(sys.argv[1], sys.argv[2])))")
    result = subprocess.run([sys.executable, "-c", code, root, split], capture_output=True,
                            text=True, check=True, timeout=300,
                            env={**os.environ, "PYTHONHASHSEED": "12345"})
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_image_folder_classes_split_and_pixels(tmp_path):
    root = write_folder(tmp_path / "folder")
    assert data.class_names("image_folder", data_dir=root) == ["ant", "bee", "cat"]
    preset = data.get_preset("image_folder", data_dir=root, image_size=12)
    assert preset.num_classes == 3
    train, test = (image_folder.list_split(root, split) for split in ("train", "test"))
    assert list(map(list, train)) == _split_in_another_process(root, "train")
    assert len(train[0]) == 12 and len(test[0]) == 3  # 20% of 5 per class
    assert set(train[0]).isdisjoint(test[0])
    assert sorted(test[1]) == [0, 1, 2]
    assert data.num_examples("caltech256", "test", data_dir=root, train_per_class=2) == 9
    (images, labels), = take_all(data.load("image_folder", "train_all", 16, training=False,
                                           data_dir=root, image_size=12))
    assert images.shape == (12, 12, 12, 3) and labels.dtype == np.int32
    names = sorted(CLASS_COLOURS)
    for image, label in zip(denormalise(images, preset), labels):
        np.testing.assert_allclose(image.reshape(-1, 3).mean(0),
                                   CLASS_COLOURS[names[label]], atol=2.0)
    with pytest.raises(ValueError, match="splits"):
        image_folder.list_split(root, "validation")


def test_image_folder_with_train_and_test_folders(tmp_path):
    for split, count in (("train", 3), ("test", 2)):
        write_folder(tmp_path / split, per_class=count)
    root = str(tmp_path)
    assert image_folder.list_classes(root) == ["ant", "bee", "cat"]
    assert data.num_examples("image_folder", "train_all", data_dir=root) == 9
    assert data.num_examples("image_folder", "test", data_dir=root) == 6
    batches = take_all(data.load("image_folder", "train_all", 4, training=True, data_dir=root,
                                 image_size=8, seed=0))
    assert [len(labels) for _, labels in batches] == [4, 4]
    assert data.num_examples("image_folder", "train", data_dir=root) == 6  # 1 a class held out


# --- Fashion-MNIST ------------------------------------------------------------------------

def test_fashion_mnist_missing_files_say_how_to_install(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        data.load("fashion_mnist", "train", 8, training=True, data_dir=str(tmp_path))


def test_fashion_mnist_idx_parsing(tmp_path):
    root = write_fake_fashion(tmp_path)
    images, labels = fashion_mnist.load_arrays("test", root)
    assert images.shape == (6, 28, 28) and list(labels) == [0, 1, 2, 3, 4, 5]
    assert data.num_examples("fashion_mnist", "train_all", data_dir=root) == 6
    bad = tmp_path / "bad.gz"
    with gzip.open(bad, "wb") as stream:
        stream.write(b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00\x00\x00\x00")  # float32 type
    with pytest.raises(ValueError, match="IDX"):
        fashion_mnist.read_idx(str(bad))


@pytest.mark.skipif(not os.path.isdir(fashion_mnist.DEFAULT_ROOT),
                    reason="apt-get install dataset-fashion-mnist")
def test_fashion_mnist_debian_files():
    images, labels = fashion_mnist.load_arrays("train")
    assert images.shape == (60_000, 28, 28) and images.dtype == np.uint8
    assert np.array_equal(np.bincount(labels), [6000] * 10)
    with gzip.open(os.path.join(fashion_mnist.DEFAULT_ROOT, "train-images-idx3-ubyte.gz")) as f:
        raw_pixels = np.frombuffer(f.read()[16:], np.uint8)  # 16-byte IDX header
    assert raw_pixels.mean() == pytest.approx(72.94, abs=0.01)  # 0.286 * 255
    assert images.mean() == pytest.approx(raw_pixels.mean(), abs=1e-9)
    assert data.num_examples("fashion_mnist", "test") == 10_000
    test_images, test_labels = fashion_mnist.load_arrays("test")
    assert list(test_labels[:5]) == [9, 2, 1, 1, 6]  # the published first test labels
    (batch, batch_labels), = take_all(data.load("fashion_mnist", "test", 500,
                                                training=False).take(1))
    assert batch.shape == (500, 28, 28, 1) and batch.dtype == np.float32
    preset = data.get_preset("fashion_mnist")
    np.testing.assert_allclose(denormalise(batch, preset)[..., 0], test_images[:500], atol=1e-3)
    np.testing.assert_array_equal(batch_labels, test_labels[:500])


# --- serving ------------------------------------------------------------------------------

def serving_function(preset):
    signature = [tf.TensorSpec([None, None, None, preset.image_size[-1]], tf.uint8)]
    return tf.function(lambda images: data.preprocess_for_serving(images, preset),
                       input_signature=signature)


def test_serving_preprocessing_equals_the_eval_pipeline(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "folder" / "only_class"
    os.makedirs(folder)
    raw = rng.integers(0, 256, (37, 50, 3), dtype=np.uint8)
    Image.fromarray(raw).save(folder / "a.png")
    preset = data.get_preset("image_folder", data_dir=str(tmp_path / "folder"), image_size=24)
    (pipeline_image, _), = take_all(data.load("image_folder", "train_all", 1, training=False,
                                              data_dir=str(tmp_path / "folder"),
                                              test_fraction=0.0, image_size=24))
    served = serving_function(preset)(raw[None]).numpy()
    assert served.shape == (1, 24, 24, 3)
    np.testing.assert_allclose(served, pipeline_image, atol=1e-6)

    fashion_root = write_fake_fashion(tmp_path)
    fashion = data.get_preset("fashion_mnist")
    (pipeline_images, _), = take_all(data.load("fashion_mnist", "test", 6, training=False,
                                               data_dir=fashion_root))
    raw_fashion = fashion_mnist.load_arrays("test", fashion_root)[0][..., None]
    np.testing.assert_allclose(serving_function(fashion)(raw_fashion).numpy(),
                               pipeline_images, atol=1e-6)
    np.testing.assert_allclose(data.preprocess_for_serving(raw_fashion, "fashion_mnist"),
                               pipeline_images, atol=1e-6)


def test_eval_takes_the_centre_crop():
    """At the evaluation resize already (shorter side 16 for a 14 px crop) only the crop acts."""
    preset = data.get_preset("caltech101", image_size=14)
    assert preset.eval_resize == 16
    raw = np.random.default_rng(1).integers(0, 256, (1, 16, 30, 3), dtype=np.uint8)
    served = denormalise(data.preprocess_for_serving(raw, preset).numpy(), preset)
    np.testing.assert_allclose(served, raw[:, 1:15, 8:22], atol=1e-3)


def write_folder_with_bad_files(root):
    """Good JPEG, PNG and WebP files per class, plus a truncated JPEG and a garbage PNG."""
    for class_name, colour in CLASS_COLOURS.items():
        os.makedirs(root / class_name)
        for extension in ("jpg", "png", "webp"):
            Image.new("RGB", (10, 12), colour).save(root / class_name / f"good.{extension}",
                                                   quality=100, lossless=True)
    whole = (root / "cat" / "good.jpg").read_bytes()
    (root / "cat" / "truncated.jpg").write_bytes(whole[:len(whole) // 2])
    (root / "bee" / "garbage.png").write_bytes(b"not an image at all")
    return str(root)


def test_unreadable_images_fail_before_training_or_are_skipped(tmp_path, capfd):
    root = write_folder_with_bad_files(tmp_path / "folder")
    load = lambda **options: data.load("image_folder", "train_all", 16, training=False,  # noqa
                                       data_dir=root, test_fraction=0.0, image_size=8,
                                       **options)
    with pytest.raises(ValueError) as failure:
        load()
    message = str(failure.value)
    assert "\n" not in message and message.startswith(f"2 of 11 images in {root}")
    assert os.path.join("cat", "truncated.jpg") in message and "garbage.png" in message
    assert "--skip_bad_images" in message
    (images, labels), = take_all(load(skip_bad_images=True))
    assert "skipped 2 of 11 images" in capfd.readouterr().err
    assert len(labels) == 9  # JPEG, PNG and WebP of each class
    preset = data.get_preset("image_folder", data_dir=root, image_size=8)
    names = sorted(CLASS_COLOURS)
    for image, label in zip(denormalise(images, preset), labels):  # WebP decodes too
        np.testing.assert_allclose(image.reshape(-1, 3).mean(0),
                                   CLASS_COLOURS[names[label]], atol=3.0)


def test_unreadable_images_are_found_in_parallel_and_named(tmp_path):
    root = write_folder_with_bad_files(tmp_path / "folder")
    paths, _ = image_folder.list_split(root, "train", test_fraction=0.0)
    assert sum(path.endswith(".webp") for path in paths) == 3
    bad = dict(image_folder.find_unreadable(paths, 3))
    assert set(bad) == {os.path.join(root, "cat", "truncated.jpg"),
                        os.path.join(root, "bee", "garbage.png")}
    assert all(reason and "\n" not in reason and "{{" not in reason and "name:" not in reason
               for reason in bad.values())
    # readable files are remembered: a second look decodes only the bad ones again
    assert dict(image_folder.find_unreadable(paths, 3)) == bad
    os.remove(os.path.join(root, "ant", "good.png"))
    assert os.path.join(root, "ant", "good.png") in dict(image_folder.find_unreadable(paths, 3))


def test_training_cli_names_the_bad_image_in_one_line(tmp_path):
    root = write_folder_with_bad_files(tmp_path / "folder")
    result = subprocess.run(
        [sys.executable, "-m", "sfocus_tf.cli.train", "--dataset=image_folder", f"--data_dir={root}",
         "--model=resnet8", "--image_size=8", "--epochs=1", "--steps_per_epoch=1",
         f"--workdir={tmp_path / 'run'}"], capture_output=True, text=True, timeout=300,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("sfocus-train: error: ") and "truncated.jpg" in last
    assert "Traceback" not in result.stderr
