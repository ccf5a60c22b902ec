"""Publishing a model version folder so that a server never sees a gap or half a model.

TF Serving polls ``base_path`` for integer-named folders and loads each new one
once; it ignores other names. A version is therefore written to a hidden
temporary folder beside it, fsynced, and renamed into place in one step:

- a new version: ``renameat2(RENAME_NOREPLACE)`` where the C library has it
  (two exports racing for the same number cannot replace each other), else
  ``rename``, which also never replaces a non-empty folder;
- an existing version (``overwrite``): ``renameat2(RENAME_EXCHANGE)`` swaps the
  two folders in one step, so the version is never missing, then the old one is
  deleted. Where the swap is not available (not Linux, or a file system without
  it) the overwrite is refused; a new version number works everywhere.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import shutil
import tempfile

# <linux/fs.h> and <fcntl.h>
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
# Errors meaning "this system or file system cannot do it", as opposed to a real failure.
_UNSUPPORTED = {errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP}


class AtomicSwapUnsupported(FileExistsError):
    """The version exists and cannot be replaced without a moment where it is missing."""


def next_version(export_dir: str) -> int:
    """One above the highest integer version present (1 for a new directory)."""
    if not os.path.isdir(export_dir):
        return 1
    versions = [int(name) for name in os.listdir(export_dir) if name.isdigit()]
    return max(versions, default=0) + 1


def _renameat2():
    """libc's ``renameat2`` (glibc >= 2.28), or None."""
    library = ctypes.util.find_library("c")
    function = getattr(ctypes.CDLL(library, use_errno=True), "renameat2", None)
    if function is not None:
        function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                             ctypes.c_uint]
    return function


def _rename(source: str, destination: str, flags: int) -> None:
    """``renameat2(source, destination, flags)``; OSError(ENOSYS) where it does not exist."""
    function = _renameat2()
    if function is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available", destination)
    if function(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(destination), flags):
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), destination)


def exchange(first: str, second: str) -> None:
    """Swaps two paths in one atomic step (``RENAME_EXCHANGE``)."""
    _rename(first, second, _RENAME_EXCHANGE)


def _swap_or_refuse(first: str, second: str, target: str) -> None:
    """``exchange``; where the system cannot do it, the refusal to overwrite ``target``."""
    try:
        exchange(first, second)
    except OSError as error:
        if error.errno in _UNSUPPORTED:
            raise AtomicSwapUnsupported(
                f"cannot replace {target} without a moment where it is missing "
                f"({error.strerror}: this system has no atomic folder swap); export a new "
                "version instead (leave out --version)") from None
        raise


def check_swap_supported(export_dir: str, target: str) -> None:
    """Tries a swap of two empty folders in ``export_dir`` (cheap, before the export)."""
    with tempfile.TemporaryDirectory(dir=export_dir, prefix=".swap-check-") as scratch:
        first, second = os.path.join(scratch, "a"), os.path.join(scratch, "b")
        os.mkdir(first), os.mkdir(second)
        _swap_or_refuse(first, second, target)


def _fsync(path: str) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_tree(root: str) -> None:
    """Flushes every file and folder under ``root`` (files first, then their folders)."""
    for folder, _, files in os.walk(root, topdown=False):
        for name in files:
            _fsync(os.path.join(folder, name))
        _fsync(folder)


def _publish_new(staged: str, target: str) -> None:
    try:
        try:
            _rename(staged, target, _RENAME_NOREPLACE)
        except OSError as error:
            if error.errno not in _UNSUPPORTED:
                raise
            # rename(2) never replaces a non-empty folder, and a version is never empty.
            os.rename(staged, target)
    except OSError as error:
        if error.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise FileExistsError(f"{target} appeared during the export (another export?); "
                                  "nothing was replaced") from None
        raise


def _publish_swap(staged: str, target: str) -> None:
    _swap_or_refuse(staged, target, target)
    shutil.rmtree(staged)  # now the old version


@contextlib.contextmanager
def staged_version(export_dir: str, version: int, overwrite: bool):
    """Yields a hidden empty folder in ``export_dir``; on success, publishes it as
    ``export_dir/<version>`` in one atomic step and yields nothing more. On any
    failure the folder is removed and no version appears or changes."""
    target = os.path.join(export_dir, str(version))
    exists = os.path.exists(target)
    if exists and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True (--overwrite) to "
                              "replace it, or another version")
    os.makedirs(export_dir, exist_ok=True)
    if exists:
        check_swap_supported(export_dir, target)
    # A hidden, non-integer name: TF Serving ignores it until the rename.
    staged = tempfile.mkdtemp(dir=export_dir, prefix=f".tmp-{version}-")
    try:
        yield staged
        os.chmod(staged, 0o755)  # mkdtemp's 0700 would hide it from a server's user
        _fsync_tree(staged)
        (_publish_swap if exists else _publish_new)(staged, target)
        _fsync(export_dir)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
