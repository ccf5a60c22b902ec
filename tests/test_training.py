import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from fake_data import write_fake_fashion
from sfocus_tf import SFocusConfig
from sfocus_tf.common.files import read_json
from sfocus_tf.configs.train_config import TrainConfig
from sfocus_tf.data import tfds_sources
from sfocus_tf.training.train import train_and_evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(model="resnet8", batch_size=8, steps_per_epoch=3, eval_steps=2,
            attention_images=3, backup_every_steps=2)


def scalar_tags(event_dir):
    tags = set()
    for name in os.listdir(event_dir):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(event_dir, name)):
            tags.update(value.tag for value in event.summary.value)
    return tags


def test_train_and_evaluate_end_to_end_on_mock_cifar(tmp_path, monkeypatch):
    config = TrainConfig(dataset="cifar10", epochs=2, image_size=16, **TINY)
    label_reads, read_labels = [], tfds_sources.labels
    monkeypatch.setattr(tfds_sources, "labels",
                        lambda *args: label_reads.append(args[1]) or read_labels(*args))
    with tfds.testing.mock_data(num_examples=24):
        metrics = train_and_evaluate(config, str(tmp_path))
    # one read of the split the validation images are carved from, for all pipelines
    assert label_reads == ["train"]
    for key in ("test_accuracy", "test_top5_accuracy", "test_ce", "test_as_last",
                "test_as_inner", "test_ac", "attention_overlap", "attention_consistency"):
        assert np.isfinite(metrics[key]), key
    assert 0.0 <= metrics["attention_overlap"] <= 1.0
    assert metrics["test_examples"] == 16  # eval_steps=2 batches of 8
    assert sorted(metrics["history"]) == [0, 1]
    assert json.loads((tmp_path / "metrics.json").read_text())["test_accuracy"] == \
        pytest.approx(metrics["test_accuracy"])
    resolved = json.loads((tmp_path / "config.json").read_text())
    assert resolved["learning_rate"] == 0.1 and resolved["schedule"] == "multistep"
    for name in ("epoch-001.png", "epoch-002.png", "final.png"):
        assert (tmp_path / "attention" / name).stat().st_size > 0
    tags = scalar_tags(tmp_path / "tensorboard" / "trial" / "train")
    assert {"loss/loss", "loss/terms/ce", "loss/terms/as_last", "loss/terms/as_inner",
            "loss/terms/ac", "accuracy/accuracy", "maps_coverage/empty_target",
            "maps_coverage/empty_confusing"} <= tags
    assert {"empty_target", "val_empty_confusing"} <= set(metrics["history"][1])
    assert "overlays/examples_1-3" in scalar_tags(tmp_path / "tensorboard" / "trial" / "attention")
    model = keras.models.load_model(tmp_path / "model.keras")
    assert model.sfocus_config == SFocusConfig()
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp")]


def test_killed_after_training_before_metrics_finishes_on_restart(tmp_path, preset_lookups):
    """Training done, metrics.json not yet written: the restart trains nothing and
    still writes the overlays and metrics of the final weights."""
    config = TrainConfig(dataset="fashion_mnist", data_dir=write_fake_fashion(tmp_path, 40),
                         epochs=1, **TINY)
    workdir = tmp_path / "run"
    first = train_and_evaluate(config, str(workdir))
    assert preset_lookups == ["fashion_mnist"]  # resolved once per run, passed down
    (workdir / "metrics.json").unlink()
    (workdir / "attention" / "final.png").unlink()
    again = train_and_evaluate(config, str(workdir))
    assert again["resumed_from_epoch"] == 1
    assert again["weights_checksum"] == first["weights_checksum"]
    assert again["test_accuracy"] == pytest.approx(first["test_accuracy"])
    assert (workdir / "attention" / "final.png").stat().st_size > 0


def run_cli(args, **kwargs):
    return subprocess.run([sys.executable, "-m", "sfocus_tf.cli.train", *args], cwd=ROOT,
                          capture_output=True, text=True, **kwargs)


# Slow: test_resume.py kills a run inside an epoch in the default suite and checks the
# resumed run bitwise; this one is the same through the console command.
@pytest.mark.slow
def test_sigkill_in_the_middle_of_an_epoch_then_resume(tmp_path):
    data_dir = write_fake_fashion(tmp_path, 64)
    workdir = tmp_path / "run"
    args = [f"--workdir={workdir}", "--dataset=fashion_mnist", f"--data_dir={data_dir}",
            "--model=resnet8", "--epochs=3", "--steps_per_epoch=60", "--batch_size=8",
            "--eval_steps=1", "--backup_every_steps=5"]
    latest = workdir / "backup" / "latest.json"
    process = subprocess.Popen([sys.executable, "-m", "sfocus_tf.cli.train", *args], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    state = None
    try:
        while time.time() < deadline and process.poll() is None:
            state = read_json(str(latest)) if latest.exists() else None
            if state and state["epoch"] >= 1 and state["step"] >= 10:
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
    finally:
        process.kill()
        process.wait()
    assert state and state["epoch"] >= 1 and state["step"] >= 10, \
        f"the run was not caught in the middle of an epoch: {state}"
    killed = read_json(str(latest))  # the backup as the kill left it
    assert killed["step"] > 0 and killed["epoch"] < 3
    result = run_cli(args, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((workdir / "metrics.json").read_text())
    assert metrics["resumed_from_epoch"] == killed["epoch"]
    assert sorted(metrics["history"], key=int) == ["0", "1", "2"]
    assert metrics["resumed_from_global_step"] == killed["global_step"]
    final = read_json(str(latest))
    # Restored at the mid-epoch backup, and from there only the steps not yet done.
    assert final["global_step"] == 3 * 60
    assert "Epoch" in result.stdout and "\r" not in result.stdout  # one line per epoch


@pytest.mark.parametrize("flag, message", [
    ("--dataset=nope", "--dataset=nope: value should be one of <caltech101|"),
    ("--model=nope", "--model=nope: value should be one of <application|"),
    ("--epochs=-2", "epochs must be a positive integer; got -2"),
    ("--data_dir=/does/not/exist", "is not a directory"),
    ("--sigma=3", "SFocusConfig.sigma=3.0 is not valid"),
])
def test_bad_flags_end_with_one_line(tmp_path, flag, message):
    result = run_cli([f"--workdir={tmp_path}", flag], timeout=120)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("sfocus-train: error:") and message in last, result.stderr[-500:]


def test_library_modules_define_no_command_line_flags():
    """Flags belong to the sfocus-* entry points; a library import that defined them
    would clash with a user's own absl flags (or with a second command's)."""
    code = ("import sfocus_tf, sfocus_tf.training.train, sfocus_tf.studies.tuning, sfocus_tf.evaluation.evaluate, "
            "sfocus_tf.studies.reproduction, sfocus_tf.serving.export, sfocus_tf.training.distribute\n"
            "from absl import flags\n"
            "print(sorted(name for name in flags.FLAGS if name in "
            "('workdir', 'dataset', 'model', 'epochs')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_application_backbone_starts_from_a_local_weights_file(tmp_path):
    """--model=application --weights=FILE: the backbone starts from the file's weights
    (offline; --weights=imagenet takes the same path after Keras' download)."""
    from sfocus_tf.training.build import build_model
    saved = keras.applications.MobileNetV2(include_top=False, weights=None,
                                           input_shape=(32, 32, 3))
    path = str(tmp_path / "mobilenet.weights.h5")
    saved.save_weights(path)
    config = TrainConfig(dataset="cifar10", image_size=32, model="application",
                         application="MobileNetV2", inner_layer="block_13_expand_relu",
                         weights=path, weight_decay=0.0)
    model = build_model(config, config.preset())
    kernel = model.backbone.get_layer("Conv1").kernel.numpy()
    np.testing.assert_array_equal(kernel, saved.get_layer("Conv1").kernel.numpy())
    with pytest.raises(ValueError, match="weights need model=application"):
        TrainConfig(weights=path)
