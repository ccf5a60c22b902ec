"""tf.distribute on CPU: MirroredStrategy on 2 logical devices, and
MultiWorkerMirroredStrategy with 2 worker processes on 127.0.0.1."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

from fake_data import write_fake_fashion
from sfocus_tf.training import distribute
from sfocus_tf.common.files import read_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "distributed", "worker.py")
EVALUATION_WORKER = os.path.join(ROOT, "tests", "distributed", "evaluation_worker.py")


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def worker_env(index, ports, tmpdir):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    return dict(os.environ, TMPDIR=str(tmpdir),
                TF_CONFIG=json.dumps({"cluster": cluster,
                                      "task": {"type": "worker", "index": index}}))


def start_workers(args, tmp_path, count=2):
    ports = free_ports(count)
    logs = [open(tmp_path / f"worker{i}.log", "w") for i in range(count)]
    processes = [subprocess.Popen([sys.executable, *args(i)], cwd=ROOT, stdout=logs[i],
                                  stderr=subprocess.STDOUT,
                                  env=worker_env(i, ports, tmp_path / "tmp"))
                 for i in range(count)]
    return processes, [tmp_path / f"worker{i}.log" for i in range(count)]


def wait_all(processes, logs, timeout=900):
    for process, log in zip(processes, logs):
        try:
            process.wait(timeout=timeout)
        finally:
            process.kill()
        assert process.returncode == 0, log.read_text()[-3000:]


def run_worker(strategy, out, *extra, env=None, script=WORKER):
    result = subprocess.run([sys.executable, script, strategy, str(out), *extra], cwd=ROOT,
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(np.load(out))


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    return run_worker("single", tmp_path_factory.mktemp("single") / "single.npz")


def assert_same_run(reference, other, replicas):
    assert int(other["replicas"]) == replicas and int(reference["replicas"]) == 1
    weights = sorted(k for k in reference if k.startswith("w"))
    assert len(weights) > 10
    for key in weights:
        np.testing.assert_allclose(other[key], reference[key], rtol=1e-5, atol=1e-5)
    for key in (k for k in reference if k.startswith("log_")):
        np.testing.assert_allclose(other[key], reference[key], rtol=1e-5, atol=1e-6)
    assert reference["w0"].std() > 0 and not np.allclose(reference["log_loss"][0],
                                                         reference["log_loss"][-1])


@pytest.mark.parametrize("jit", [False, True])
def test_mirrored_on_two_cpus_matches_one_device(single, tmp_path, jit):
    extra = ["--jit"] if jit else []
    assert_same_run(single, run_worker("mirrored", tmp_path / "m.npz", *extra), 2)


def test_multi_worker_matches_one_process(single, tmp_path):
    outs = [tmp_path / f"w{i}.npz" for i in range(2)]
    processes, logs = start_workers(lambda i: [WORKER, "multi_worker", str(outs[i])], tmp_path)
    wait_all(processes, logs)
    for out in outs:
        assert_same_run(single, dict(np.load(out)), 2)


def cli_args(workdir, data_dir, *extra):
    return ["-m", "sfocus_tf.cli.train", f"--workdir={workdir}", "--strategy=multi_worker",
            "--dataset=fashion_mnist", f"--data_dir={data_dir}", "--model=resnet8",
            "--batch_size=16", "--eval_steps=1", *extra]


def test_multi_worker_killed_midway_resumes_from_the_backup_and_only_the_chief_writes(
        tmp_path):
    data_dir = write_fake_fashion(tmp_path, 64)
    workdir = tmp_path / "run"
    (tmp_path / "tmp").mkdir()
    args = lambda i: cli_args(workdir, data_dir, "--epochs=2", "--steps_per_epoch=24",  # noqa
                              "--backup_every_steps=4")
    processes, logs = start_workers(args, tmp_path)
    latest = workdir / "backup" / "latest.json"
    state, deadline = None, time.time() + 600
    try:
        while time.time() < deadline and all(p.poll() is None for p in processes):
            state = read_json(str(latest)) if latest.exists() else None
            if state and state["epoch"] >= 1 and state["step"] >= 4:
                processes[1].send_signal(signal.SIGKILL)  # a worker dies mid-epoch...
                break
            time.sleep(0.05)
    finally:
        time.sleep(1)
        for process in processes:  # ...and the job is restarted, as a cluster would
            process.kill()
            process.wait()
    assert state and state["epoch"] >= 1 and state["step"] >= 4, (
        f"not caught in the middle of an epoch: {state}\n" + logs[0].read_text()[-2000:])
    killed = read_json(str(latest))
    # a SIGKILL leaves the killed worker's scratch folder; the restart must leave none
    shutil.rmtree(tmp_path / "tmp")
    (tmp_path / "tmp").mkdir()
    processes, logs = start_workers(args, tmp_path)
    wait_all(processes, logs)
    metrics = json.loads((workdir / "metrics.json").read_text())
    assert metrics["resumed_from_epoch"] == killed["epoch"] >= 1
    assert sorted(metrics["history"], key=int) == ["0", "1"]
    assert metrics["resumed_from_global_step"] == killed["global_step"]
    final = read_json(str(latest))
    assert final["global_step"] == 2 * 24  # resumed at the step: none redone
    # the restarted job ends with one set of weights, written by the chief alone
    checksums = [re.findall(r"weights ([0-9a-f]{16})", log.read_text()) for log in logs]
    assert len(checksums[0]) == 1 and checksums[0] == checksums[1]
    assert metrics["replicas"] == 2 and metrics["weights_checksum"] == checksums[0][0]
    assert sorted(os.listdir(workdir)) == ["attention", "backup", "config.json",
                                           "metrics.json", "model.keras", "tensorboard"]
    # The other worker's directory is gone. Autograph also compiles its generated
    # modules in TMPDIR, leaving __pycache__ unless PYTHONDONTWRITEBYTECODE is set.
    assert [name for name in os.listdir(tmp_path / "tmp") if name != "__pycache__"] == []


# -- TF_CONFIG: read only by strategy=multi_worker, checked -----------------------

SECOND_WORKER = {"cluster": {"worker": ["10.0.0.1:1", "10.0.0.2:1"]},
                 "task": {"type": "worker", "index": 1}}


def test_a_leftover_tf_config_does_not_redirect_a_one_machine_run(tmp_path, monkeypatch):
    """Another job's TF_CONFIG left in the shell: a one-machine run still writes into
    its workdir (not into a temporary folder deleted at the end), even if malformed."""
    strategy = distribute.make_strategy("auto")
    for leftover in (json.dumps(SECOND_WORKER), "{not json"):
        monkeypatch.setenv("TF_CONFIG", leftover)
        assert distribute.is_chief(strategy)
        assert distribute.output_dir(str(tmp_path), strategy) == str(tmp_path)


@pytest.mark.parametrize("cluster, task, chief", [
    ({"worker": ["a:1", "b:1"]}, {"type": "worker", "index": 0}, True),
    ({"worker": ["a:1", "b:1"]}, {"type": "worker", "index": 1}, False),
    ({"chief": ["a:1"], "worker": ["b:1"]}, {"type": "worker", "index": 0}, False),
    ({"chief": ["a:1"], "worker": ["b:1"]}, {"type": "chief", "index": 0}, True),
    ({"worker": ["a:1", "b:1"]}, {"type": "worker", "index": "1"}, False),  # as TF reads it
])
def test_multi_worker_chief_from_tf_config(tmp_path, monkeypatch, cluster, task, chief):
    monkeypatch.setattr(distribute, "uses_tf_config", lambda strategy: True)
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    out = distribute.output_dir(str(tmp_path / "run"), None)
    assert distribute.is_chief(None) == chief
    assert (out == str(tmp_path / "run")) == chief
    if not chief:  # a worker's own throw-away folder
        assert out.startswith(str(tmp_path / "tmp" / f"sfocus-{task['type']}{task['index']}-"))


@pytest.mark.parametrize("value, message", [
    (None, "strategy=multi_worker needs the TF_CONFIG environment variable"),
    ("{not json", "TF_CONFIG is not valid JSON: Expecting property name"),
    ('["worker"]', 'TF_CONFIG needs "cluster"'),
    ('{"task": {"type": "worker", "index": 0}}', 'TF_CONFIG needs "cluster"'),
    ('{"cluster": {"worker": "a:1"}, "task": {"type": "worker", "index": 0}}',
     'TF_CONFIG needs "cluster"'),
    ('{"cluster": {"worker": ["a:1"]}}', 'TF_CONFIG needs "task"'),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker"}}', 'TF_CONFIG needs "task"'),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}',
     "TF_CONFIG task type 'ps' is not in its cluster (worker)"),
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}',
     "TF_CONFIG task index 2 is out of range: the cluster has 2 worker task(s)"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": "x"}}',
     "TF_CONFIG task index 'x' is out of range"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": -1}}',
     "TF_CONFIG task index -1 is out of range"),
])
def test_a_malformed_tf_config_is_one_line_naming_it(monkeypatch, value, message):
    if value is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", value)
    with pytest.raises(ValueError) as caught:
        distribute.make_strategy("multi_worker")  # refused before TensorFlow reads it
    assert message in str(caught.value) and "\n" not in str(caught.value)


def assert_evaluates_like_the_saved_model(result, replicas_here):
    """Validation, evaluate and predict under the strategy equal the saved model's on
    one device, and every replica holds the saved BatchNorm statistics."""
    names = [k[len("saved_evaluate_"):] for k in result if k.startswith("saved_evaluate_")]
    assert {"loss", "ce", "accuracy", "as_last"} <= set(names)
    for name in names:
        for source in ("validation_", "evaluate_"):
            np.testing.assert_allclose(result[source + name], result["saved_evaluate_" + name],
                                       rtol=1e-5, atol=1e-6, err_msg=source + name)
    np.testing.assert_allclose(result["predict"], result["saved_predict"], rtol=1e-5,
                               atol=1e-6)
    local = sorted(k for k in result if k.startswith("local_"))
    assert len(local) == 8 and all(len(result[k]) == replicas_here for k in local)
    for key in local:
        for copy in result[key]:
            np.testing.assert_allclose(copy, result["saved_" + key[6:]], rtol=1e-6, atol=1e-7)


def test_mirrored_evaluates_with_the_saved_batch_norm_statistics(tmp_path):
    # The halves of the batch differ, so without synchronised moving statistics each
    # replica evaluates its slice with its own statistics (predictions differ ~2e-2).
    result = run_worker("mirrored", tmp_path / "result.npz", script=EVALUATION_WORKER)
    assert int(result["replicas"]) == 2
    assert_evaluates_like_the_saved_model(result, replicas_here=2)


def test_multi_worker_evaluates_with_the_saved_batch_norm_statistics(tmp_path):
    outs = [tmp_path / f"w{i}.npz" for i in range(2)]
    processes, logs = start_workers(
        lambda i: [EVALUATION_WORKER, "multi_worker", str(outs[i])], tmp_path)
    wait_all(processes, logs)
    for result in (dict(np.load(out)) for out in outs):
        assert int(result["replicas"]) == 2
        assert_evaluates_like_the_saved_model(result, replicas_here=1)

