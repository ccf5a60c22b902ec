"""tf.distribute on CPU: MirroredStrategy on 2 logical devices, and
MultiWorkerMirroredStrategy with 2 worker processes on 127.0.0.1."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from fake_data import write_fake_fashion
from sfocus_tf.checkpointing import read_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "distributed", "worker.py")


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


def run_worker(strategy, out, *extra, env=None):
    result = subprocess.run([sys.executable, WORKER, strategy, str(out), *extra], cwd=ROOT,
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
    return ["-m", "sfocus_tf.train", f"--workdir={workdir}", "--strategy=multi_worker",
            "--dataset=fashion_mnist", f"--data_dir={data_dir}", "--model=resnet8",
            "--batch_size=16", "--eval_steps=1", *extra]


def test_train_cli_multi_worker_only_the_chief_writes(tmp_path):
    data_dir = write_fake_fashion(tmp_path, 64)
    workdir = tmp_path / "run"
    (tmp_path / "tmp").mkdir()
    processes, logs = start_workers(
        lambda i: cli_args(workdir, data_dir, "--epochs=2", "--steps_per_epoch=3"), tmp_path)
    wait_all(processes, logs)
    checksums = [re.findall(r"weights ([0-9a-f]{16})", log.read_text()) for log in logs]
    assert len(checksums[0]) == 1 and checksums[0] == checksums[1]  # identical weights
    metrics = json.loads((workdir / "metrics.json").read_text())
    assert metrics["replicas"] == 2 and metrics["weights_checksum"] == checksums[0][0]
    assert sorted(os.listdir(workdir)) == ["attention", "backup", "config.json",
                                           "metrics.json", "model.keras", "tensorboard"]
    assert os.listdir(tmp_path / "tmp") == []  # the other worker's directory is gone


def test_multi_worker_killed_midway_resumes_from_the_backup(tmp_path):
    data_dir = write_fake_fashion(tmp_path, 64)
    workdir = tmp_path / "run"
    (tmp_path / "tmp").mkdir()
    args = lambda i: cli_args(workdir, data_dir, "--epochs=3", "--steps_per_epoch=40",  # noqa
                              "--backup_every_steps=4")
    processes, logs = start_workers(args, tmp_path)
    latest = workdir / "backup" / "latest.json"
    state, deadline = None, time.time() + 600
    try:
        while time.time() < deadline and all(p.poll() is None for p in processes):
            state = read_json(str(latest)) if latest.exists() else None
            if state and state["epoch"] >= 1 and state["step"] >= 8:
                processes[1].send_signal(signal.SIGKILL)  # a worker dies mid-epoch...
                break
            time.sleep(0.05)
    finally:
        time.sleep(1)
        for process in processes:  # ...and the job is restarted, as a cluster would
            process.kill()
            process.wait()
    assert state and state["epoch"] >= 1 and state["step"] >= 8, (
        f"not caught in the middle of an epoch: {state}\n" + logs[0].read_text()[-2000:])
    killed = read_json(str(latest))
    processes, logs = start_workers(args, tmp_path)
    wait_all(processes, logs)
    metrics = json.loads((workdir / "metrics.json").read_text())
    assert metrics["resumed_from_epoch"] == killed["epoch"] >= 1
    assert sorted(metrics["history"], key=int) == ["0", "1", "2"]
    assert metrics["resumed_from_global_step"] == killed["global_step"]
    final = read_json(str(latest))
    assert final["global_step"] == 3 * 40  # resumed at the step: none redone
