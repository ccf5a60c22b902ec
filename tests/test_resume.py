"""Restarts: exact resume at the step, config changes, NaN losses, unreadable backups."""

import json
import logging
import os
import shutil
import signal
import subprocess
import sys

import h5py
import numpy as np
import pytest

from fake_data import write_fake_fashion
from sfocus_tf.training.checkpointing import BackupError
from sfocus_tf.common.files import read_json
from sfocus_tf.training.finite import NonFiniteError
from sfocus_tf.configs.train_config import TrainConfig, config_changes
from sfocus_tf.training.resume import ConfigChangedError
from sfocus_tf.training.train import train_and_evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = os.path.join(ROOT, "tests", "resume", "run.py")
TOTAL_STEPS = 15  # tests/resume/run.py: 3 epochs of 5 steps
TINY = dict(model="resnet8", batch_size=8, steps_per_epoch=4, eval_steps=1,
            attention_images=2, backup_every_steps=2)


def run(data_dir, workdir, kill_at=0, strategy="auto"):
    return subprocess.run([sys.executable, RUN, data_dir, str(workdir), str(kill_at), strategy],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)


def metrics_of(result):
    assert result.returncode == 0, result.stderr[-3000:]
    line = [l for l in result.stdout.splitlines() if l.startswith("METRICS ")][-1]
    return json.loads(line[len("METRICS "):])


@pytest.mark.parametrize("strategy", ["auto", pytest.param("mirrored", marks=pytest.mark.slow)])
def test_sigkill_at_a_random_step_then_restart_equals_a_run_never_killed(tmp_path, strategy):
    data_dir = write_fake_fashion(tmp_path, 48)
    # Seeded: step 8, after the backup at 7 (epoch 2, step 2): a step is redone.
    kill_at = int(np.random.default_rng(16).integers(1, TOTAL_STEPS))
    killed = run(data_dir, tmp_path / "killed", kill_at, strategy)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    backup = read_json(str(tmp_path / "killed" / "backup" / "latest.json"))
    assert 0 < backup["global_step"] < kill_at  # the kill lost work after the backup
    assert backup["step"] > 0  # the backup is inside an epoch
    resumed = metrics_of(run(data_dir, tmp_path / "killed", 0, strategy))
    whole = metrics_of(run(data_dir, tmp_path / "whole", 0, strategy))
    assert resumed["replicas"] == whole["replicas"] == (2 if strategy == "mirrored" else 1)
    assert resumed["resumed_from_global_step"] == backup["global_step"]
    assert whole["resumed_from_global_step"] == 0
    assert resumed["trainable_checksum"] == whole["trainable_checksum"]
    final = read_json(str(tmp_path / "killed" / "backup" / "latest.json"))
    assert final["global_step"] == TOTAL_STEPS and final["epoch"] == 3
    assert resumed["train_seconds"] > backup["train_seconds"] > 0  # both processes
    # Bitwise: every weight (the BatchNorm statistics are the replicas' mean after
    # every step, so a backup holds what every replica holds), test accuracy, and
    # every epoch's logs but the interrupted epoch's running means under
    # MirroredStrategy, summed per replica in another order.
    assert resumed["weights_checksum"] == whole["weights_checksum"]
    assert resumed["test_accuracy"] == whole["test_accuracy"]
    if strategy == "auto":
        assert resumed["history"] == whole["history"]
    for epoch, logs in whole["history"].items():
        for name, value in logs.items():
            assert resumed["history"][epoch][name] == pytest.approx(value, rel=1e-6), name


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 1-epoch run (backups at steps 2 and 4), copied by each test."""
    root = tmp_path_factory.mktemp("trained")
    config = TrainConfig(dataset="fashion_mnist", data_dir=write_fake_fashion(root, 40),
                         epochs=1, **TINY)
    metrics = train_and_evaluate(config, str(root / "run"))
    return config, root / "run", metrics


def copy_of(trained, tmp_path):
    config, workdir, metrics = trained
    shutil.copytree(workdir, tmp_path / "run")
    return config, tmp_path / "run", metrics


def test_restart_with_another_config_is_refused_in_one_line(trained, tmp_path):
    config, workdir, _ = copy_of(trained, tmp_path)
    stored = (workdir / "config.json").read_text()
    changed = config.replace(learning_rate=0.05, epochs=2,
                             sfocus=config.sfocus.replace(w_ac=0.0))
    with pytest.raises(ConfigChangedError) as error:
        train_and_evaluate(changed, str(workdir))
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"workdir {workdir} was trained with a different config: ")
    assert "epochs 1 -> 2" in message and "learning_rate 0.1 -> 0.05" in message
    assert "sfocus.w_ac 1.0 -> 0.0" in message and "allow_config_change" in message
    assert "momentum" not in message  # only the fields that differ
    assert (workdir / "config.json").read_text() == stored  # not overwritten


def test_operational_fields_may_change_and_the_override_continues(trained, tmp_path):
    config, workdir, first = copy_of(trained, tmp_path)
    again = train_and_evaluate(config.replace(backup_every_steps=3, attention_images=3),
                               str(workdir))
    assert again["weights_checksum"] == first["weights_checksum"]  # nothing retrained
    longer = train_and_evaluate(config.replace(epochs=2), str(workdir),
                                allow_config_change=True)
    assert longer["resumed_from_epoch"] == 1 and sorted(longer["history"]) == [0, 1]
    assert longer["history"][0] == first["history"][0]  # epoch 0 was not redone
    assert json.loads((workdir / "config.json").read_text())["epochs"] == 2
    assert read_json(str(workdir / "backup" / "latest.json"))["global_step"] == 8


def test_config_changes_compare_json_values_and_skip_operational_fields():
    config = TrainConfig(milestones=(2, 3), schedule="multistep")
    stored = json.loads(json.dumps(config.to_dict()))  # milestones: a list
    stored.update(seed=1, strategy="mirrored", backup_every_steps=5)
    del stored["sfocus"]["map_activation"]  # a config.json from an older version
    del stored["weights"]  # one written before --weights existed: unset is no change
    del stored["skip_bad_images"]  # before it existed: False is what every run did
    assert config_changes(stored, config) == [
        "seed 1 -> 0", 'sfocus.map_activation (absent) -> "relu"']
    assert config_changes(stored, config.replace(
        model="application", application="MobileNetV2", inner_layer="block_13_expand_relu",
        weights="imagenet", seed=1))[-1] == 'weights (absent) -> "imagenet"'
    assert config_changes(stored, config.replace(skip_bad_images=True)) == [
        "seed 1 -> 0", 'sfocus.map_activation (absent) -> "relu"',
        "skip_bad_images (absent) -> true"]
    # A loss term added since (w_bw) is no change at weight 0, a change otherwise.
    del stored["sfocus"]["w_bw"]
    assert "sfocus.w_bw" not in " ".join(config_changes(stored, config))
    assert config_changes(stored, config.replace(sfocus=config.sfocus.replace(
        w_bw=1.0)))[-1] == "sfocus.w_bw (absent) -> 1.0"


def test_train_cli_refuses_a_changed_config_unless_told(trained, tmp_path):
    config, workdir, _ = copy_of(trained, tmp_path)
    args = [sys.executable, "-m", "sfocus_tf.cli.train", f"--workdir={workdir}",
            f"--data_dir={config.data_dir}", "--model=resnet8", "--batch_size=8",
            "--steps_per_epoch=4", "--eval_steps=1", "--epochs=1", "--lr=0.05"]
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("sfocus-train: error: workdir") and "--allow_config_change" in last
    assert "learning_rate 0.1 -> 0.05" in last and "backup_every_steps" not in last


def weights_in(path):
    values = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: values.append(item[()])
                     if isinstance(item, h5py.Dataset) else None)
    return values


@pytest.mark.parametrize("learning_rate, message", [
    (1e30, r"loss went non-finite at step 2 \(batch 2 of the epoch\): ce=nan"),
    (float("inf"), r"variable\(s\) are not finite at step 1 .*the backup not written"),
])
def test_a_non_finite_loss_stops_at_once_and_keeps_finite_backups(
        tmp_path, learning_rate, message):
    """1e30: the first step's update is finite but huge, the second step's loss NaN.
    inf: the first update already makes the weights infinite,
    with a finite loss: the backup's own check stops it."""
    config = TrainConfig(dataset="fashion_mnist", data_dir=write_fake_fashion(tmp_path, 40),
                         epochs=2, learning_rate=learning_rate,
                         **dict(TINY, backup_every_steps=1))
    workdir = tmp_path / "run"
    with pytest.raises(NonFiniteError, match=message) as error:
        train_and_evaluate(config, str(workdir))
    assert "\n" not in str(error.value)
    assert not (workdir / "model.keras").exists() and not (workdir / "metrics.json").exists()
    backups = sorted(p.name for p in (workdir / "backup").glob("ckpt-*")) \
        if (workdir / "backup").exists() else []
    if learning_rate == 1e30:
        assert backups == ["ckpt-1.json", "ckpt-1.weights.h5"]
        assert all(np.isfinite(w).all() for w in weights_in(workdir / "backup" /
                                                             "ckpt-1.weights.h5"))
    else:
        assert backups == []


@pytest.mark.parametrize("damage", ["truncate_weights", "garbage_state"])
def test_an_unreadable_newest_backup_falls_back_to_the_previous_one(
        trained, tmp_path, caplog, damage):
    config, workdir, first = copy_of(trained, tmp_path)
    backup = workdir / "backup"
    assert sorted(p.name for p in backup.glob("ckpt-*")) == [
        "ckpt-2.json", "ckpt-2.weights.h5", "ckpt-4.json", "ckpt-4.weights.h5"]
    newest = backup / "ckpt-4.weights.h5"
    if damage == "truncate_weights":
        newest.write_bytes(newest.read_bytes()[:1000])
    else:
        (backup / "ckpt-4.json").write_text('{"epoch": 1, "st')
    with caplog.at_level(logging.WARNING):
        again = train_and_evaluate(config, str(workdir))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("ckpt-4" in w and "falling back to the previous one" in w for w in warnings)
    assert any("resuming from the backup at step 2" in w for w in warnings)
    assert again["resumed_from_global_step"] == 2 and again["resumed_from_step"] == 2
    assert read_json(str(backup / "latest.json"))["global_step"] == 4  # redone


def test_no_readable_backup_is_an_error_not_a_fresh_start(trained, tmp_path):
    config, workdir, _ = copy_of(trained, tmp_path)
    for weights in (workdir / "backup").glob("*.weights.h5"):
        weights.write_bytes(b"not hdf5")
    with pytest.raises(BackupError, match="no backup in .* can be read"):
        train_and_evaluate(config, str(workdir))


def test_backups_newer_than_the_resumed_step_are_removed_as_stale(trained, tmp_path):
    """An unreadable backup at step 9 (a later, abandoned run): training resumes from
    step 4 and, at its next backups, drops step 9 instead of the good ones."""
    config, workdir, _ = copy_of(trained, tmp_path)
    backup = workdir / "backup"
    shutil.copy(backup / "ckpt-4.json", backup / "ckpt-9.json")
    (backup / "ckpt-9.weights.h5").write_bytes(b"truncated")
    longer = train_and_evaluate(config.replace(epochs=2), str(workdir),
                                allow_config_change=True)
    assert longer["resumed_from_global_step"] == 4
    assert sorted(p.name for p in backup.glob("ckpt-*")) == [
        "ckpt-6.json", "ckpt-6.weights.h5", "ckpt-8.json", "ckpt-8.weights.h5"]
