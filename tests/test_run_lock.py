"""One writer per directory: a second process is refused in one line naming the
directory and the holder; a lock left by a killed process never blocks a restart."""

import os
import signal
import subprocess
import sys
import time

import pytest

from sfocus_tf.common import run_lock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Holds the lock until the release file appears (at most 10 minutes).
HOLD = ("import os, sys, time; from sfocus_tf.common import run_lock\n"
        "with run_lock.exclusive(sys.argv[1], 'a training run'):\n"
        "    open(sys.argv[2], 'w').write('holding')\n"
        "    deadline = time.time() + 600\n"
        "    while not os.path.exists(sys.argv[3]) and time.time() < deadline:\n"
        "        time.sleep(0.05)\n"
        "    open(sys.argv[2], 'a').write(' done')\n")


def holder(directory, marker, release):
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(directory), str(marker),
                                str(release)], cwd=ROOT)
    deadline = time.time() + 120
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.1)
    assert marker.exists(), "the holder never took the lock"
    return process


def test_a_second_writer_is_refused_and_the_first_finishes(tmp_path):
    run = tmp_path / "run"
    release = tmp_path / "release"
    first = holder(run, tmp_path / "marker", release)
    with pytest.raises(run_lock.DirectoryInUseError) as refused:
        with run_lock.exclusive(str(run), "a training run"):
            pytest.fail("entered a directory in use")
    message = str(refused.value)
    assert "\n" not in message and str(run) in message
    assert f"process {first.pid} (-c " in message and "one process writes a training run" in message
    second = subprocess.run(  # the command line says it in one line too
        [sys.executable, "-m", "sfocus_tf.cli.train", f"--workdir={run}", "--epochs=1",
         "--steps_per_epoch=1", "--model=resnet8"], cwd=ROOT, capture_output=True, text=True,
        timeout=300)
    assert second.returncode == 1, second.stderr[-2000:]
    last = second.stderr.strip().splitlines()[-1]
    assert last.startswith(f"sfocus-train: error: {run} is in use by process {first.pid}")
    assert first.poll() is None, "the holder let go before the second writer was refused"
    release.touch()
    assert first.wait(timeout=120) == 0
    assert (tmp_path / "marker").read_text() == "holding done"
    assert not (run / run_lock.LOCK_FILE).exists()  # removed by the holder on its way out


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path):
    run = tmp_path / "run"
    killed = holder(run, tmp_path / "marker", tmp_path / "never")
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    assert (run / run_lock.LOCK_FILE).exists()  # left behind, but the kernel released it
    with run_lock.exclusive(str(run), "a training run"):
        assert f"process {os.getpid()}" in (run / run_lock.LOCK_FILE).read_text()
    with run_lock.exclusive(str(run)):  # and again, after our own release
        pass


def test_directories_off_the_local_disk_are_not_locked():
    with run_lock.exclusive("ram://nowhere/run"):
        with run_lock.exclusive("ram://nowhere/run"):
            pass
