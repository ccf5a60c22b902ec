"""The examples run as they are written."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


def test_quickstart_trains_and_draws_the_maps(tmp_path):
    output = tmp_path / "maps.png"
    result = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "quickstart.py"),
                             "--steps=3", f"--output={output}"], cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "feature maps: {'inner': (None, 14, 14, 32), 'last': (None, 7, 7, 64)}" in \
        result.stdout
    assert "confused with:" in result.stdout and "as_last" in result.stdout
    assert output.stat().st_size > 1000
