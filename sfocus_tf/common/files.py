"""Durable, atomic writes to any ``tf.io.gfile`` path (a local folder, ``gs://``,
``ram://``, ...), and local copies of remote files for readers that need one.

A file is written under a temporary name (``.tmp-<8 characters><suffix>``) in its
final folder and then renamed onto its name, so a reader never sees half a file and
a run killed while writing leaves the previous version intact. Locally the file is
flushed and fsynced before the rename and the folder is fsynced after it, so the
new version survives a power cut too; it gets the permissions of any file the user
creates (``0o666 & ~umask``). Elsewhere the file is written locally first (h5py,
PIL and ``model.save`` need a local file), copied to the temporary name in the
destination folder and renamed there (on GCS a rename is a copy and a delete:
readers still never see a partial file, but the rename itself is not atomic).

Failures surface as ``OSError`` with the destination path as ``filename`` (a full
disk: ``errno.ENOSPC``), which the ``sfocus-*`` commands print as one line.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import secrets
import tempfile

import tensorflow as tf

TEMPORARY_PREFIX = ".tmp-"
# Our temporary names (and those of tempfile.mkstemp, which earlier versions used):
# the prefix, 8 name characters, an optional suffix such as ".weights.h5".
_TEMPORARY_NAME = re.compile(r"^\.tmp-[a-z0-9_]{8}(\.[A-Za-z0-9_.]+)?$")

# tf.io.gfile raises tf.errors.*; callers get the OSError a local file would give.
_ERRNO = {
    tf.errors.NotFoundError: errno.ENOENT,
    tf.errors.PermissionDeniedError: errno.EACCES,
    tf.errors.AlreadyExistsError: errno.EEXIST,
    tf.errors.ResourceExhaustedError: errno.ENOSPC,
    tf.errors.FailedPreconditionError: errno.ENOTDIR,  # e.g. "... is not a directory"
    tf.errors.UnimplementedError: errno.EINVAL,  # e.g. an unknown file system scheme
    tf.errors.InvalidArgumentError: errno.EINVAL,
}


def is_local(path: str) -> bool:
    """True for a path of the local file system (no ``scheme://``)."""
    return "://" not in str(path)


def join(*parts: str) -> str:
    return os.path.join(*map(str, parts))  # "/" joins gs:// and ram:// paths too


@contextlib.contextmanager
def os_errors(path: str):
    """Turns ``tf.io.gfile`` errors, and OSErrors that name no file (a failed write)
    or only our temporary one, into an ``OSError`` naming ``path``."""
    try:
        yield
    except tf.errors.OpError as error:
        head, _, reason = error.message.rpartition("; ")  # often "<path>; <reason>"
        reason = reason if head == str(path) else error.message
        raise OSError(_ERRNO.get(type(error), errno.EIO), reason, str(path)) from error
    except OSError as error:
        named = error.filename is not None
        if named and not _TEMPORARY_NAME.match(os.path.basename(str(error.filename))):
            raise
        raise OSError(error.errno or errno.EIO, error.strerror or str(error), str(path)) \
            from error


def makedirs(path: str) -> None:
    with os_errors(path):
        tf.io.gfile.makedirs(str(path))


def exists(path: str) -> bool:
    with os_errors(path):
        return tf.io.gfile.exists(str(path))


def listdir(path: str) -> list:
    with os_errors(path):
        return tf.io.gfile.listdir(str(path))


def remove(path: str) -> None:
    with os_errors(path):
        tf.io.gfile.remove(str(path))


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = ""):
    """Yields a local path to write; on success its file replaces ``path`` (see the
    module docstring). On failure nothing is left behind and ``path`` is unchanged."""
    path = str(path)
    directory = os.path.dirname(path) or "."
    makedirs(directory)
    if is_local(path):
        with os_errors(path), _local_temporary(directory, suffix) as temporary:
            yield temporary
            _fsync(temporary)
            os.replace(temporary, path)
            _fsync(directory, folder=True)
        return
    with os_errors(path), _local_temporary(tempfile.gettempdir(), suffix) as temporary:
        yield temporary
        remote = join(directory, _temporary_name(suffix))
        try:
            tf.io.gfile.copy(temporary, remote, overwrite=True)
            tf.io.gfile.rename(remote, path, overwrite=True)
        finally:
            if tf.io.gfile.exists(remote):
                tf.io.gfile.remove(remote)


@contextlib.contextmanager
def _local_temporary(directory: str, suffix: str):
    """A new empty file in ``directory``, created with mode 0o666 (less the umask,
    as the kernel applies it: mkstemp's 0o600 would hide results from the group);
    removed afterwards unless renamed away."""
    while True:
        temporary = os.path.join(directory, _temporary_name(suffix))
        try:
            os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    try:
        yield temporary
    finally:
        if os.path.lexists(temporary):
            os.remove(temporary)


def _temporary_name(suffix: str) -> str:
    return f"{TEMPORARY_PREFIX}{secrets.token_hex(4)}{suffix}"


def _fsync(path: str, folder: bool = False) -> None:
    """Flushes a file's (or a folder's entries') data to the disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    except OSError as error:
        # Some file systems (FUSE mounts, some NFS) cannot sync a folder: the file
        # itself is on disk already, so that is no reason to fail the write.
        if not folder or error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(descriptor)


def remove_temporaries(root: str) -> list:
    """Deletes the temporary files a killed run left under ``root`` (only names of
    our pattern); returns their paths. Call it where no other process writes."""
    removed = []
    if not exists(root):
        return removed
    with os_errors(root):
        for directory, _, names in tf.io.gfile.walk(str(root)):
            for name in filter(_TEMPORARY_NAME.match, names):
                tf.io.gfile.remove(join(directory, name))
                removed.append(join(directory, name))
    return removed


def prepare_output_dir(directory: str) -> list:
    """At the start of a run: checks ``directory`` is writable (creating it) and
    removes the temporary files an earlier, killed run left there; returns those."""
    check_writable(directory)
    return remove_temporaries(directory)


def check_writable(directory: str) -> None:
    """Creates ``directory`` and a probe file in it: an unwritable or invalid folder
    fails here, before any work, with an OSError naming it and why."""
    with atomic_path(join(directory, ".probe"), ".probe") as temporary:
        with open(temporary, "w") as f:
            f.write("sfocus_tf can write here\n")
    remove(join(directory, ".probe"))


@contextlib.contextmanager
def local_copy(path: str):
    """Yields a local path holding ``path``'s bytes: ``path`` itself when it is
    local, else a temporary copy (same file-name ending) removed afterwards."""
    path = str(path)
    if is_local(path):
        yield path
        return
    name = os.path.basename(path)
    suffix = name[name.index("."):] if "." in name else ""
    handle, temporary = tempfile.mkstemp(prefix="sfocus-", suffix=suffix)
    os.close(handle)
    try:
        with os_errors(path):
            tf.io.gfile.copy(path, temporary, overwrite=True)
        yield temporary
    finally:
        os.remove(temporary)


# -- JSON and models -----------------------------------------------------------

def write_json(path: str, value) -> None:
    """Writes ``value`` as strict JSON, atomically. Non-finite floats become
    ``null`` (JSON has no NaN; Python's bare ``NaN`` would break other readers)."""
    write_text(path, json.dumps(json_safe(value), indent=2, sort_keys=True,
                                default=_jsonable, allow_nan=False) + "\n")


def write_text(path: str, text: str) -> None:
    """Writes ``text`` to ``path`` atomically (the suffix of the temporary file is
    the path's own, so tools that sniff it see the right type)."""
    with atomic_path(path, os.path.splitext(path)[1]) as temporary:
        with open(temporary, "w") as f:
            f.write(text)


def read_json(path: str, default=None):
    """The JSON value in ``path``, or ``default`` when there is no such file."""
    if not exists(path):
        return default
    with os_errors(path), tf.io.gfile.GFile(str(path)) as f:
        return json.load(f)


def save_model(model, path: str) -> None:
    """``model.save(path)`` (a ``.keras`` file), atomically."""
    with atomic_path(path, ".keras") as temporary:
        model.save(temporary)


def json_safe(value):
    """``value`` with every NaN or Inf float replaced by None (JSON ``null``), so
    strict JSON readers accept it; nested dicts, lists and tuples are walked and
    NumPy scalars (``np.float32`` included) become Python numbers."""
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _jsonable(value):
    if hasattr(value, "tolist"):  # NumPy arrays (scalars are items: see json_safe)
        return json_safe(value.tolist())
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
