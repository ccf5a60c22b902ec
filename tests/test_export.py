import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import keras_models
from sfocus_tf import SFocusModel, data
from sfocus_tf.export import export_saved_model, next_version

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A small Fashion-MNIST-shaped model, exported once for every test here."""
    preset = data.get_preset("fashion_mnist")
    model = SFocusModel(keras_models.get("resnet8", preset.image_size, 10), 10)
    root = tmp_path_factory.mktemp("export")
    path = export_saved_model(model, preset, str(root / "fashion"))
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28, 1), dtype=np.uint8)
    inputs = data.preprocess_for_serving(images, preset)
    cases = root / "cases.npz"
    np.savez(cases, images=images, top_k=5,
             probabilities=tf.nn.softmax(model(inputs)).numpy())
    return {"model": model, "preset": preset, "path": path, "root": root, "cases": cases}


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
        export_saved_model(exported["model"], exported["preset"], target, version=1)
    again = export_saved_model(exported["model"], exported["preset"], target, version=1,
                               overwrite=True)
    assert again == os.path.join(target, "1")
    assert sorted(os.listdir(target)) == ["1"]
