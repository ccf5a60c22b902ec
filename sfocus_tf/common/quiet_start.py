"""TensorFlow's start-up lines that say nothing about the run, kept off stderr.

Importing TensorFlow 2.21 prints, through absl's C++ logging before it is set up
(so ``TF_CPP_MIN_LOG_LEVEL`` does not reach them), that oneDNN is on and, on a
machine without a GPU, that no CUDA driver was found: before every command's
output; so does the first look for GPUs (``failed call to cuInit``). While
TensorFlow is imported and the GPUs are listed, stderr (file descriptor 2, which the C++
code writes to) goes to a temporary file; afterwards every other line is written
back, in order, so real warnings and errors still show. With a GPU device present
the missing-driver lines are kept: there they are news.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import sys
import tempfile

_NOISE = (
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"I\d{4} [^\]]*\] oneDNN custom operations are on\. .*",
    r"I\d{4} [^\]]*\] This TensorFlow binary is optimized to use available CPU .*",
    r"To enable the following instructions: .* with the appropriate compiler flags\.",
)
_NO_DRIVER = (
    r"I\d{4} [^\]]*\] Could not find cuda drivers on your machine, GPU will not be used\.",
    r"E\d{4} [^\]]*\] failed call to cuInit: .*",  # the first look for GPUs
)


def noise_pattern(has_gpu_device: bool) -> re.Pattern:
    """The lines to drop: all of ``_NOISE``, and the missing-driver line where there
    is no GPU to drive."""
    lines = _NOISE if has_gpu_device else _NOISE + _NO_DRIVER
    return re.compile("|".join(f"(?:{line})" for line in lines))


def keep(text: str, pattern: re.Pattern) -> str:
    """``text`` without the lines that ``pattern`` matches in full."""
    return "".join(line for line in text.splitlines(keepends=True)
                   if not pattern.fullmatch(line.rstrip("\r\n")))


@contextlib.contextmanager
def filtered_stderr():
    """Runs the body with file descriptor 2 captured, then writes back what it
    printed but the start-up noise."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable stderr: nothing to filter
        yield
        return
    pattern = noise_pattern(bool(glob.glob("/dev/nvidia[0-9]*")))
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            sys.stderr.write(keep(captured.read().decode(errors="replace"), pattern))
            sys.stderr.flush()
