import errno
import os
import shutil
import subprocess
import sys
import threading
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_models
from sfocus_tf import SFocusModel, data
from sfocus_tf.serving import version_dirs
from sfocus_tf.serving.export import export_saved_model, next_version

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_BATCH_SIZE = 6  # small, so that the contract check can send one image too many


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A small Fashion-MNIST-shaped model, exported once for every test here."""
    preset = data.get_preset("fashion_mnist")
    model = SFocusModel(keras_models.get("resnet8", preset.image_size, 10), 10)
    root = tmp_path_factory.mktemp("export")
    names = data.class_names("fashion_mnist")
    path = export_saved_model(model, preset, str(root / "fashion"), names,
                              max_batch_size=MAX_BATCH_SIZE)
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28, 1), dtype=np.uint8)
    inputs = data.preprocess_for_serving(images, preset)
    cases = root / "cases.npz"
    np.savez(cases, images=images, top_k=5, class_names=np.array(names),
             max_batch_size=MAX_BATCH_SIZE, probabilities=tf.nn.softmax(model(inputs)).numpy())
    return {"model": model, "preset": preset, "path": path, "root": root, "cases": cases,
            "names": names}


def clean_python(*args):
    """A process that has never imported the project (what a model server is)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          env=env, cwd="/", timeout=300)


def test_layout_is_versioned_and_atomic(exported):
    root = exported["root"] / "fashion"
    assert exported["path"] == str(root / "1")
    assert sorted(os.listdir(root)) == ["1"]  # no temporary directory left behind
    assert (root / "1" / "saved_model.pb").exists()
    assert (root / "1" / "assets" / "class_names.txt").read_text().splitlines() == [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
        "Bag", "Ankle boot"]
    assert oct(os.stat(root / "1").st_mode & 0o777) == "0o755"
    assert next_version(str(root)) == 2


def test_contract_in_a_clean_process(exported):
    result = clean_python(os.path.join(HERE, "serving", "contract_check.py"),
                          exported["path"], str(exported["cases"]))
    assert result.returncode == 0, result.stdout[-1500:] + result.stderr[-3000:]
    assert "contract ok" in result.stdout


def test_saved_model_cli_show_and_run(exported):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    shown = subprocess.run([cli, "show", "--dir", exported["path"], "--all"],
                           capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr[-2000:]
    for text in ("signature_def['serving_default']", "signature_def['attention']",
                 "inputs['images']", "DT_UINT8", "outputs['probabilities']",
                 "outputs['target_map']"):
        assert text in shown.stdout, text
    images = np.load(exported["cases"])["images"]
    inputs = exported["root"] / "inputs.npy"
    np.save(inputs, images)
    out_dir = exported["root"] / "cli_out"
    ran = subprocess.run([cli, "run", "--dir", exported["path"], "--tag_set", "serve",
                          "--signature_def", "serving_default",
                          "--inputs", f"images={inputs}", "--outdir", str(out_dir)],
                         capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-2000:]
    np.testing.assert_allclose(np.load(out_dir / "probabilities.npy"),
                               np.load(exported["cases"])["probabilities"], rtol=1e-4,
                               atol=1e-5)


def test_refuses_to_overwrite_unless_told(exported):
    target = str(exported["root"] / "fashion")
    with pytest.raises(FileExistsError, match="exists"):
        export(exported, target, version=1)
    again = export(exported, target, version=1, overwrite=True)
    assert again == os.path.join(target, "1")
    assert sorted(os.listdir(target)) == ["1"]


def export(exported, export_dir, class_names=None, **kwargs):
    return export_saved_model(exported["model"], exported["preset"], str(export_dir),
                              class_names or exported["names"], **kwargs)


def test_exchange_swaps_two_folders_in_one_step(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    (first / "name").write_text("first"), (second / "name").write_text("second")
    try:
        version_dirs.exchange(str(first), str(second))
    except OSError as error:  # not Linux >= 3.15 with glibc >= 2.28, or no file system support
        pytest.skip(f"no RENAME_EXCHANGE here: {error}")
    assert (first / "name").read_text() == "second"
    assert (second / "name").read_text() == "first"


class Watcher(threading.Thread):
    """Polls a file while an export runs; counts the polls that do not find it."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path, self.polls, self.misses, self.done = path, 0, 0, threading.Event()

    def run(self):
        while not self.done.is_set():
            self.polls += 1
            self.misses += not os.path.isfile(self.path)
            time.sleep(1e-4)  # leaves the export most of the interpreter


def test_overwrite_swaps_the_version_without_a_gap(exported, tmp_path, monkeypatch):
    model_file = tmp_path / "1" / "saved_model.pb"
    assert export(exported, tmp_path, top_k=2) == str(tmp_path / "1")
    old = model_file.read_bytes()
    calls = []  # every folder operation, and whether the version was there after it

    def watched(function):
        def call(*args, **kwargs):
            result = function(*args, **kwargs)
            calls.append((function.__name__, args[:2], model_file.is_file()))
            return result
        return call

    for module, name in ((os, "rename"), (os, "replace"), (shutil, "rmtree"),
                         (version_dirs, "exchange")):
        monkeypatch.setattr(module, name, watched(getattr(module, name)))
    watcher = Watcher(model_file)
    watcher.start()
    try:
        export(exported, tmp_path, version=1, overwrite=True, top_k=3)
    finally:
        watcher.done.set()
        watcher.join()
    assert all(present for *_, present in calls), calls
    assert watcher.polls > 0 and watcher.misses == 0, (watcher.polls, watcher.misses)
    assert any(name == "exchange" and args[1] == str(tmp_path / "1")
               for name, args, _ in calls), calls
    assert model_file.read_bytes() != old  # the new graph (top 3) is in place
    assert sorted(os.listdir(tmp_path)) == ["1"]  # the old one is gone, no temporary left
    assert export(exported, tmp_path) == str(tmp_path / "2")  # the default: a new version


def test_overwrite_is_refused_where_folders_cannot_be_swapped(exported, tmp_path, monkeypatch):
    export(exported, tmp_path)
    inode = os.stat(tmp_path / "1").st_ino

    def no_swap(first, second):
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), second)

    monkeypatch.setattr(version_dirs, "exchange", no_swap)
    with pytest.raises(FileExistsError, match="export a new version instead"):
        export(exported, tmp_path, version=1, overwrite=True)
    assert os.stat(tmp_path / "1").st_ino == inode
    assert sorted(os.listdir(tmp_path)) == ["1"]


def test_a_failed_export_leaves_no_version_behind(exported, tmp_path, monkeypatch):
    def half_written(archive, path, **kwargs):
        assert os.path.basename(path).startswith("."), path  # hidden from TF Serving
        with open(os.path.join(path, "saved_model.pb"), "wb") as f:
            f.write(b"half a model")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(type(keras.export.ExportArchive()), "write_out", half_written)
    with pytest.raises(OSError, match="No space left"):
        export(exported, tmp_path)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("names, message", [
    (["a", "b"], "2 class names for a model with 10 classes"),
    ([f"class {i}" for i in range(9)] + ["two\nlines"], "non-empty single lines"),
])
def test_class_names_must_fit_the_model(exported, tmp_path, names, message):
    with pytest.raises(ValueError, match=message):
        export(exported, tmp_path, class_names=names)
    assert os.listdir(tmp_path) == []


def test_cli_exports_next_version_with_the_flags(exported, tmp_path):
    """sfocus-export: the run's class names and --max_batch_size reach the SavedModel;
    --overwrite of an existing version says the running server keeps the old one."""
    run = tmp_path / "run"
    run.mkdir()
    exported["model"].save(run / "model.keras")
    (run / "config.json").write_text(
        '{"dataset": "fashion_mnist", "image_size": null, "data_dir": null}')
    export_dir = tmp_path / "models"
    export(exported, export_dir)  # version 1, to be replaced
    result = subprocess.run(
        [sys.executable, "-m", "sfocus_tf.cli.export", f"--workdir={run}",
         f"--export_dir={export_dir}", "--model_version=1", "--overwrite", "--max_batch_size=2"],
        capture_output=True, text=True, timeout=300, cwd=os.path.dirname(HERE))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith(f"exported {export_dir / '1'} (replaced in one swap; a "
                                    "running TF Serving keeps the version it loaded"), \
        result.stdout
    loaded = tf.saved_model.load(str(export_dir / "1"))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"at most 2 images.*\[3\]"):
        loaded.signatures["serving_default"](images=tf.zeros([3, 28, 28, 1], tf.uint8))
    names = loaded.signatures["serving_default"](images=tf.zeros([2, 28, 28, 1], tf.uint8))
    assert set(names["class_names"].numpy().ravel()) <= {n.encode() for n in exported["names"]}


def test_a_version_that_appears_during_the_export_is_not_replaced(tmp_path):
    """Two exports racing for the same number: the second fails, the first stays."""
    with pytest.raises(FileExistsError, match="appeared during the export"):
        with version_dirs.staged_version(str(tmp_path), 1, overwrite=False) as staged:
            with open(os.path.join(staged, "saved_model.pb"), "w") as f:
                f.write("ours")
            (tmp_path / "1").mkdir()
            (tmp_path / "1" / "saved_model.pb").write_text("theirs")
    assert (tmp_path / "1" / "saved_model.pb").read_text() == "theirs"
    assert os.listdir(tmp_path) == ["1"]


@pytest.mark.parametrize("reading, same", [("gradcam", True), ("training", False)])
def test_served_maps_are_the_evaluation_maps(tmp_path, reading, same):
    """A model trained with softmax maps: its attention signature serves standard
    Grad-CAM, the maps evaluation and the overlays show (within 1e-3), unless the export
    opts in to the training reading, whose maps differ."""
    from sfocus_tf import SFocusConfig, attention_maps
    from sfocus_tf.modeling.gradcam import shown_reading
    preset = data.get_preset("fashion_mnist")
    config = SFocusConfig(map_activation="softmax", map_temperature="spatial_std")
    model = SFocusModel(keras_models.get("resnet8", preset.image_size, 10), 10, config)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (6, 28, 28, 1), dtype=np.uint8)
    inputs = data.preprocess_for_serving(images, preset)
    model.fit(inputs, rng.integers(0, 10, 6), batch_size=3, epochs=1, verbose=0)
    path = export_saved_model(model, preset, str(tmp_path / "m"), data.class_names(preset),
                              attention_reading=reading)
    maps = attention_maps(model, inputs, reading=shown_reading())
    resized = {name: tf.image.resize(maps[f"{role}_last"][..., None], (28, 28))[..., 0].numpy()
               for role, name in (("target", "target_map"), ("confusing", "confusing_map"))}
    cases = tmp_path / "cases.npz"
    np.savez(cases, images=images, tolerance=1e-3 if same else 0.1, **resized)
    result = clean_python(os.path.join(HERE, "serving", "served_maps_check.py"), path,
                          str(cases))
    assert (result.returncode == 0) == same, result.stdout[-1500:] + result.stderr[-1500:]
    assert "max abs differences" in result.stdout


def test_an_unknown_attention_reading_is_refused_before_writing(exported, tmp_path):
    with pytest.raises(ValueError, match="attention reading 'own' is not valid"):
        export_saved_model(exported["model"], exported["preset"], str(tmp_path / "x"),
                           exported["names"], attention_reading="own")
    assert not (tmp_path / "x").exists()
