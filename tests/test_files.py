"""sfocus_tf.common.files: durable atomic writes on any tf.io.gfile file system, and the
one-line errors of the commands when files cannot be written."""

import errno
import json
import os
import re
import stat
import subprocess
import sys
import tempfile
import tomllib

import numpy as np
import pytest
import tensorflow as tf

from fake_data import write_fake_fashion
from sfocus_tf.common import files, versions

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def umask():
    """Sets a umask for the test, and restores the previous one."""
    previous = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_get_the_permissions_of_any_new_file(tmp_path, umask, mask, mode):
    umask(mask)
    files.write_json(str(tmp_path / "metrics.json"), {"a": 1})
    with files.atomic_path(str(tmp_path / "model.keras"), ".keras") as temporary:
        open(temporary, "wb").close()
    for name in ("metrics.json", "model.keras"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == mode, name


def test_file_is_fsynced_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: events.append(
        ("fsync", os.readlink(f"/proc/self/fd/{fd}"))) or real_fsync(fd))
    monkeypatch.setattr(os, "replace", lambda a, b: events.append(
        ("replace", str(b))) or real_replace(a, b))
    target = tmp_path / "config.json"
    files.write_json(str(target), {"lr": 0.1})
    assert [kind for kind, _ in events] == ["fsync", "replace", "fsync"]
    assert os.path.basename(events[0][1]).startswith(".tmp-")  # the new file's data...
    assert events[1][1] == str(target)  # ...then the rename...
    assert events[2][1] == str(tmp_path)  # ...then the folder's entry
    assert json.loads(target.read_text()) == {"lr": 0.1}


def test_a_failed_write_keeps_the_previous_version_and_leaves_nothing(tmp_path):
    target = tmp_path / "metrics.json"
    files.write_json(str(target), {"version": 1})
    with pytest.raises(OSError) as caught:
        with files.atomic_path(str(target), ".json") as temporary:
            with open(temporary, "w") as f:
                f.write('{"version": 2')
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # the disk is full
    # The error now names the file that could not be written.
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert json.loads(target.read_text()) == {"version": 1}
    assert os.listdir(tmp_path) == ["metrics.json"]
    with pytest.raises(OSError) as caught:  # the OS names the temporary: we name the file
        with files.atomic_path(str(target), ".json") as temporary:
            raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT), temporary)
    assert caught.value.filename == str(target) and caught.value.errno == errno.EDQUOT


def test_json_has_no_bare_nan(tmp_path):
    value = {"loss": float("nan"), "history": {"0": {"ce": np.float32("inf")}},
             "per_class": np.array([0.5, np.nan]), "steps": np.int64(3), "ok": 0.25}
    files.write_json(str(tmp_path / "m.json"), value)

    def no_constants(name):
        raise AssertionError(f"bare {name} in the JSON")

    assert json.loads((tmp_path / "m.json").read_text(), parse_constant=no_constants) == {
        "loss": None, "history": {"0": {"ce": None}}, "per_class": [0.5, None], "steps": 3,
        "ok": 0.25}


def test_json_safe_turns_non_finite_floats_into_none_and_numpy_scalars_into_python():
    value = {"a": float("nan"), "b": [1.0, float("inf"), np.float32("-inf")], "c": 2,
             "d": (np.float32(0.5), np.float64("nan"), np.int64(7))}
    safe = files.json_safe(value)
    assert safe == {"a": None, "b": [1.0, None, None], "c": 2, "d": [0.5, None, 7]}
    assert type(safe["d"][0]) is float and type(safe["d"][2]) is int
    json.dumps(safe, allow_nan=False)  # raises on a bare NaN


def test_leftover_temporaries_of_a_killed_run_are_removed_and_nothing_else(tmp_path):
    keep = ["config.json", ".tmp-user-notes.txt", ".tmpfile", "backup/.tmp-abc",
            "backup/ckpt-4.weights.h5"]
    ours = [".tmp-0a1b2c3d.json", "backup/.tmp-k2_x9qz0.weights.h5", "attention/.tmp-deadbeef.png"]
    for name in keep + ours:
        os.makedirs(tmp_path / os.path.dirname(name), exist_ok=True)
        (tmp_path / name).write_text("x")
    removed = files.prepare_output_dir(str(tmp_path))
    assert sorted(removed) == sorted(str(tmp_path / name) for name in ours)
    left = {os.path.relpath(os.path.join(d, f), tmp_path)
            for d, _, names in os.walk(tmp_path) for f in names}
    assert left == set(keep)


@pytest.mark.parametrize("workdir, reason", [
    ("{file}/run", "is not a directory"),
    ("nope://bucket/run", "File system scheme 'nope' not implemented"),
])
def test_an_unusable_workdir_is_an_os_error_naming_it(tmp_path, workdir, reason):
    (tmp_path / "file").write_text("a file, not a folder")
    workdir = workdir.format(file=tmp_path / "file")
    with pytest.raises(OSError) as caught:
        files.check_writable(workdir)
    assert reason in caught.value.strerror and caught.value.filename.startswith(workdir)


def test_local_copy_of_a_remote_file_keeps_its_ending_and_goes_away(tmp_path):
    remote = f"ram://{tmp_path.name}/backup/ckpt-3.weights.h5"
    files.makedirs(os.path.dirname(remote))
    with tf.io.gfile.GFile(remote, "wb") as f:
        f.write(b"weights")
    with files.local_copy(remote) as local:
        assert local.endswith(".weights.h5") and open(local, "rb").read() == b"weights"
    assert not os.path.exists(local)


def test_remote_writes_land_in_the_bucket_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    root = f"ram://{tmp_path.name}/run"
    files.write_json(f"{root}/metrics.json", {"x": 1.5})
    assert files.read_json(f"{root}/metrics.json") == {"x": 1.5}
    assert tf.io.gfile.listdir(root) == ["metrics.json"]
    assert os.listdir(tmp_path) == []  # no ./ram: folder, no local temporary left


# -- a whole run on a remote file system -------------------------------------------

def test_a_run_on_ram_writes_everything_there_and_reads_back(tmp_path, monkeypatch):
    """A tiny run with ``workdir=ram://...`` (TensorFlow's in-memory file system; gs://
    goes through the same code): every artefact in it, nothing local; a leftover
    TF_CONFIG of another job's second worker changes nothing (one-machine strategy)."""
    from sfocus_tf.evaluation.evaluate import evaluate_run
    from sfocus_tf.configs.run_dir import load_run
    from sfocus_tf.configs.train_config import TrainConfig
    from sfocus_tf.training.train import train_and_evaluate

    data_dir = write_fake_fashion(tmp_path, 40)
    local = tmp_path / "cwd"
    local.mkdir()
    monkeypatch.chdir(local)
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2"]},
                                                "task": {"type": "worker", "index": 1}}))
    workdir = f"ram://{tmp_path.name}/run"
    config = TrainConfig(dataset="fashion_mnist", data_dir=data_dir, model="resnet8",
                         batch_size=8, steps_per_epoch=3, eval_steps=1, attention_images=2,
                         backup_every_steps=2, epochs=1)
    leftover = f"{workdir}/backup/.tmp-0a1b2c3d.weights.h5"  # of a killed earlier run
    files.makedirs(f"{workdir}/backup")
    with tf.io.gfile.GFile(leftover, "w") as f:
        f.write("half a backup")
    metrics = train_and_evaluate(config, workdir)
    assert not files.exists(leftover)
    found = {path[len(workdir) + 1:] for path in tf.io.gfile.glob(f"{workdir}/*") +
             tf.io.gfile.glob(f"{workdir}/*/*") + tf.io.gfile.glob(f"{workdir}/*/*/*")}
    assert {"config.json", "metrics.json", "model.keras", "backup/latest.json",
            "backup/ckpt-2.weights.h5", "backup/ckpt-3.weights.h5", "attention/epoch-001.png",
            "attention/final.png"} <= found
    for events in ("train", "validation", "attention"):
        assert tf.io.gfile.glob(f"{workdir}/tensorboard/trial/{events}/events.out.tfevents.*")
    assert not [name for name in found if ".tmp-" in name]
    assert files.read_json(f"{workdir}/metrics.json")["weights_checksum"] == \
        metrics["weights_checksum"]
    again = train_and_evaluate(config, workdir)  # restores the backup from ram://
    assert again["resumed_from_epoch"] == 1
    assert again["weights_checksum"] == metrics["weights_checksum"]
    stored, model = load_run(workdir)
    assert stored == config.resolve() and model.count_params() > 0
    results = evaluate_run(workdir, f"{workdir}/eval", eval_steps=1, batch_size=8,
                           num_overlays=2)
    assert files.read_json(f"{workdir}/eval/eval.json")["examples"] == results["examples"] == 8
    assert sorted(tf.io.gfile.listdir(f"{workdir}/eval")) == ["eval.json", "eval.md",
                                                               "overlays.png"]
    assert os.listdir(local) == []  # nothing of the run in the working directory


# -- the commands' one-line errors -------------------------------------------------

def run_train(args, code="", env=None, timeout=300):
    """``sfocus-train ARGS`` in a subprocess, after ``code`` (e.g. a monkeypatch)."""
    script = (f"{code}\nimport runpy, sys\nsys.argv = ['sfocus-train', *{list(args)!r}]\n"
              "runpy.run_module('sfocus_tf.cli.train', run_name='__main__')")
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=env)


# The TensorFlow runtime's own log lines ("I0000 00:00:...", before absl logging starts).
RUNTIME_LOG = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages before absl)")


def one_error_line(result) -> str:
    """The only line on stderr besides the runtime's logs; exit status 1."""
    assert result.returncode == 1, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if not RUNTIME_LOG.match(line)]
    assert len(lines) == 1, result.stderr[-2000:]
    return lines[0]


# Fails the write of any of our JSON temporaries, as a full disk would.
DISK_FULL = """
import builtins, errno, os
_open = builtins.open
class _Full:
    def __init__(self, f): self.f = f
    def __enter__(self): return self
    def __exit__(self, *exc): self.f.close()
    def write(self, text): raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
def _full_open(path, mode="r", *args, **kwargs):
    f = _open(path, mode, *args, **kwargs)
    name = os.path.basename(str(path))
    return _Full(f) if "w" in mode and name.startswith(".tmp-") and name.endswith(".json") else f
builtins.open = _full_open
"""


@pytest.mark.parametrize("case", ["unwritable", "invalid", "disk_full"])
def test_train_file_errors_are_one_line_naming_the_path(tmp_path, case):
    data_dir = write_fake_fashion(tmp_path, 8)
    (tmp_path / "file").write_text("not a folder")
    workdir, code, expected = {
        "unwritable": (tmp_path / "file" / "run", "", f"{tmp_path / 'file'}"),
        "invalid": ("nope://bucket/run", "", "nope://bucket/run"),
        "disk_full": (tmp_path / "run", DISK_FULL,
                      f"{tmp_path / 'run' / 'config.json'}: No space left on device"),
    }[case]
    result = run_train([f"--workdir={workdir}", f"--data_dir={data_dir}", "--model=resnet8",
                        "--epochs=1", "--steps_per_epoch=1", "--batch_size=8"], code)
    line = one_error_line(result)
    assert line.startswith("sfocus-train: error: ") and expected in line, line
    if case == "disk_full":  # nothing half-written left behind
        assert os.listdir(tmp_path / "run") == []


def test_a_wrong_keras_version_is_one_line(tmp_path):
    fake = tmp_path / "keras"
    fake.mkdir()
    (fake / "__init__.py").write_text('__version__ = "3.16.0"\n')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), ROOT]))
    result = run_train(["--workdir=run"], env=env, timeout=120)
    assert one_error_line(result) == ("sfocus_tf: error: sfocus_tf needs keras>=3.15,<3.16; "
                                      "keras 3.16.0 is installed")


def test_version_check_uses_the_pins_of_pyproject(monkeypatch):
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # check() sets its own
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        dependencies = tomllib.load(f)["project"]["dependencies"]
    for package, specifier in versions.REQUIRED.items():
        assert package + specifier in dependencies
    versions.check("keras", "3.15.1")  # passes
    with pytest.raises(versions.VersionError, match="keras 3.14.0 is installed"):
        versions.check("keras", "3.14.0")
