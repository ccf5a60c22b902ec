"""bench/accelerator.py --smoke, run as a command: every configuration it was asked for
is in its JSON, measured or skipped with a reason, and its Markdown names the device."""

import itertools
import json
import os
import subprocess
import sys

import pytest

# The real path: under Bazel this file is a link in the runfiles, which hold no bench/.
ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
SCRIPT = os.path.join(ROOT, "bench", "accelerator.py")
NAMES = ("plain_keras", "sfocus_second_order", "sfocus_first_order")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def run_bench(folder, *flags):
    """(the JSON report, the Markdown text) of a smoke run with ``flags``."""
    paths = folder / "accelerator.json", folder / "accelerator.md"
    result = subprocess.run(
        [sys.executable, SCRIPT, "--smoke", f"--output_json={paths[0]}",
         f"--output_md={paths[1]}", *flags],
        cwd=folder, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with open(paths[0]) as f:
        report = json.load(f)
    return report, paths[1].read_text()


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    return run_bench(tmp_path_factory.mktemp("accelerator"))


def measured(variant):
    return "images_per_s" in variant


def test_every_requested_configuration_is_measured_or_skipped_with_a_reason(smoke):
    report, _ = smoke
    rows = [row for row in report["training"] if row["part"] == "one_replica"]
    keys = sorted((row["model"], row["batch"], row["xla"], row["precision"]) for row in rows)
    assert keys == sorted(itertools.product(["resnet8"], [4], [False], PRECISIONS))
    for row in rows:
        assert row["replicas"] == 1 and row["shape"] == "16x16x3"
        assert set(row["variants"]) == set(NAMES)
        for name, variant in row["variants"].items():
            assert (measured(variant) and variant["images_per_s"] > 0
                    or variant["skipped"]), (row["precision"], name, variant)
    float32 = next(row for row in rows if row["precision"] == "float32")
    assert all(measured(variant) for variant in float32["variants"].values())


def test_ratios_are_the_throughput_over_the_plain_step_of_the_same_row(smoke):
    report, _ = smoke
    checked = 0
    for row in report["training"]:
        plain = row["variants"]["plain_keras"]
        for name in NAMES[1:]:
            variant = row["variants"][name]
            if measured(variant) and measured(plain):
                expected = variant["images_per_s"] / plain["images_per_s"]
                assert variant["ratio_to_plain"] == pytest.approx(expected)
                assert variant["images_per_s"] == pytest.approx(
                    row["batch"] / variant["median_step_s"])
                checked += 1
    assert checked >= 2


def test_memory_is_null_on_cpu_and_the_part_without_gpus_is_skipped(smoke):
    report, _ = smoke
    assert report["device"].startswith("CPU only") and report["device_details"] == []
    for row in report["training"]:
        for variant in row["variants"].values():
            if measured(variant):
                assert variant["peak_memory_mib"] is None
                assert variant["step_memory_mib"] is None
    assert "2 or more GPUs" in report["parts"]["mirrored"]["skipped"]
    assert report["parts"]["one_replica"]["skipped"] is None
    assert all(part["seconds"] >= 0 for part in report["parts"].values())


def test_attention_latency_at_batch_1_and_64(smoke):
    report, _ = smoke
    rows = {(row["signature"], row["batch"]): row for row in report["attention"]}
    assert set(rows) == set(itertools.product(["attention", "serving_default"], [1, 64]))
    assert all(0 < row["p50_ms"] <= row["p99_ms"] for row in rows.values())


def test_the_markdown_names_the_device_versions_and_command(smoke):
    report, text = smoke
    assert report["device"] in text
    assert f"TensorFlow {report['tensorflow']}" in text and "--smoke" in text
    assert text.count("| one_replica | resnet8 | 4 | off |") == len(PRECISIONS)
    assert "| attention | resnet8 | 64 |" in text


@pytest.mark.slow
def test_mirrored_xla_on_logical_cpus_and_the_time_budget(tmp_path):
    """The MirroredStrategy path on 2 logical CPUs: Keras' own XLA step is skipped with
    its known failure, SFOCUS' runs; rows past the time budget are recorded as such."""
    report, text = run_bench(tmp_path, "--parts=mirrored,one_replica", "--cpu_devices=2",
                             "--precisions=float32", "--xla=on,off", "--time_budget_s=1")
    first, *rest = report["training"]
    assert (first["part"], first["replicas"], first["xla"]) == ("mirrored", 2, True)
    assert "keras-team/keras#18716" in first["variants"]["plain_keras"]["skipped"]
    for name in NAMES[1:]:
        assert first["variants"][name]["images_per_s"] > 0
        assert first["variants"][name]["ratio_to_plain"] is None
    assert [(row["part"], row["xla"]) for row in rest] == [
        ("mirrored", False), ("one_replica", True), ("one_replica", False)]
    assert all("time budget" in variant["skipped"]
               for row in rest for variant in row["variants"].values())
    assert "keras-team/keras#18716" in text
