"""The sfocus-* commands: --help lists each one's flags, --version, python -m sfocus_tf,
and no TensorFlow start-up noise before their output."""

import glob
import os
import re
import subprocess
import sys

import pytest

import sfocus_tf
from sfocus_tf.common import quiet_start

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NO_GPU = not glob.glob("/dev/nvidia[0-9]*")


def command(*args):
    return subprocess.run([sys.executable, "-m", "sfocus_tf", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name, shown", [
    ("train", ["--dataset: <caltech101|", "|fashion_mnist|fashion_mnist_cluttered|",
               "--model: <application|",
               "--config: <caltech256|", "--lr: Peak learning rate", "--[no]second_order",
               "--map_activation: <softmax|relu|abs>", "(default: 'resnet20')",
               "--workdir", "--[no]baseline", "--w_as_last: Weight of the as_last term, "]),
    ("tune", ["--tuner: <random|bayesian|hyperband>", "--max_trials", "--ranges",
              "--dataset: <caltech101|", "--w_ac"]),
    ("reproduce", ["--grid: <default|readings|pilot|plusplus>", "--[no]report_test", "--seeds", "--config: <caltech256|",
                   "--epochs"]),
    ("eval", ["--workdir: A training run's directory", "--split", "--output_dir"]),
    ("export", ["--export_dir", "--model_version", "--max_batch_size", "(default: '64')"]),
])
def test_help_lists_the_commands_flags_with_choices_and_defaults(name, shown):
    result = command(name, "--help")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith(f"sfocus-{name}: ")  # the command's own description
    unwrapped = re.sub(r"\n +", "", result.stdout)  # absl wraps long lines mid-word
    for text in shown:
        assert text in unwrapped, text
    assert "--multi_label" not in result.stdout  # derived from the dataset
    if NO_GPU:
        assert "oneDNN" not in result.stderr and "cuda" not in result.stderr.lower(), \
            result.stderr


def test_version_and_unknown_commands():
    result = command("train", "--version")
    assert result.returncode == 0 and result.stdout == f"sfocus-train {sfocus_tf.__version__}\n"
    result = command("fly")
    assert result.returncode == 2 and "error: unknown command 'fly'" in result.stderr
    assert "  reproduce  SFOCUS readings against the baseline" in result.stderr


def test_help_lists_the_commands_and_no_command_is_a_usage_error():
    from sfocus_tf.cli import COMMANDS
    shown = command("--help")
    assert shown.returncode == 0 and shown.stderr == ""
    for name, description in COMMANDS.items():
        assert f"  {name:<9}  {description}\n" in shown.stdout
        with open(os.path.join(ROOT, "sfocus_tf", "cli", f"{name}.py")) as f:
            first_line = f.readline()
        assert first_line == f'"""sfocus-{name}: {description}\n'  # one description each
    missing = command()
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr == shown.stdout + "\nerror: no command given\n"


def test_start_up_noise_is_dropped_and_everything_else_kept():
    text = ("WARNING: All log messages before absl::InitializeLog() is called are written "
            "to STDERR\n"
            "I0000 00:00:1795.1 9735 port.cc:153] oneDNN custom operations are on. You may "
            "see slightly different numerical results.\n"
            "I0000 00:00:1795.2 9735 cudart_stub.cc:31] Could not find cuda drivers on your "
            "machine, GPU will not be used.\n"
            "E0000 00:00:1795.3 3779 cuda_platform.cc:52] failed call to cuInit: INTERNAL\n"
            "E0000 00:00:1795.4 3779 op_kernel.cc:1] OOM when allocating tensor\n"
            "a warning of our own\n")
    kept = quiet_start.keep(text, quiet_start.noise_pattern(has_gpu_device=False))
    assert kept == ("E0000 00:00:1795.4 3779 op_kernel.cc:1] OOM when allocating tensor\n"
                    "a warning of our own\n")
    with_gpu = quiet_start.keep(text, quiet_start.noise_pattern(has_gpu_device=True))
    assert "Could not find cuda drivers" in with_gpu and "failed call to cuInit" in with_gpu
    assert "oneDNN" not in with_gpu


def test_every_command_is_a_console_script():
    import tomllib
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        scripts = tomllib.load(f)["project"]["scripts"]
    from sfocus_tf.cli import COMMANDS
    assert scripts == {f"sfocus-{name}": f"sfocus_tf.cli.{name}:run" for name in COMMANDS}
