"""One writer per directory: a training run, a study, a tuner search or an export
directory is written by one process at a time.

The lock is ``flock`` on a file in the directory (``LOCK_FILE``), which the kernel
releases when its holder exits for any reason, SIGKILL included: a lock left by a killed
process never blocks a restart. The holder writes its pid and command line into the
file, so that a refused second writer can say who holds it. Directories that are not
on a local file system (``ram://``, ``gs://``) cannot be locked this way and are not.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys

from sfocus_tf.common import files

LOCK_FILE = ".sfocus.lock"


class DirectoryInUseError(ValueError):
    """Another process writes this directory (a ValueError: one line in the CLI)."""


def _holder(handle) -> str:
    handle.seek(0)
    return handle.read().strip() or "another process"


def _acquire(path: str, directory: str, what: str):
    """The open lock file, locked; the file is checked to still be the one at ``path``
    (a holder that finished removes it: locking a removed file would lock nothing)."""
    while True:
        handle = open(path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(handle)
            handle.close()
            raise DirectoryInUseError(
                f"{directory} is in use by {holder}: one process writes {what} at a time; "
                "wait for it to finish or stop it") from None
        try:
            if os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino:
                return handle
        except FileNotFoundError:
            pass
        handle.close()


@contextlib.contextmanager
def exclusive(directory: str, what: str = "this directory"):
    """Holds ``directory``'s lock while the block runs; raises ``DirectoryInUseError``
    at once, naming the directory and the holder, when another process holds it. The
    lock file is removed on the way out (one left by a killed process is reused)."""
    if not files.is_local(directory):
        yield
        return
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, LOCK_FILE)
    handle = _acquire(path, directory, what)
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} ({' '.join(sys.argv)[:200]})\n")
        handle.flush()
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)  # before the unlock: a waiting opener then retries
        handle.close()  # releases the lock
