"""The accelerator story in one process: SFOCUS against a plain Keras step on the
devices this machine has, with and without XLA, in each precision, on one replica and
mirrored over every GPU, and the exported attention signature's latency.

    python bench/accelerator.py [--parts=one_replica,mirrored,attention]
        [--batch_sizes=128,512] [--steps=10] [--rounds=2] [--smoke]

- ``one_replica``: for each backbone (``--models``), batch size, XLA setting and
  precision, a plain Keras step and the SFOCUS step (the default ``SFocusConfig()``,
  second order on and off), timed interleaved in rounds as ``bench/step_time.py``
  does. Per variant: images per second, the SFOCUS / plain throughput ratio, and the
  peak device memory of its timed steps (null on CPU: TensorFlow counts none there).
- ``mirrored``: the same under ``tf.distribute.MirroredStrategy`` over every visible
  GPU, at the same global batch; skipped, with the reason, with fewer than two.
- ``attention``: p50 / p99 latency of the ``attention`` signature (and of
  ``serving_default``) of an exported SavedModel, trained for 0 steps, at batch 1 and 64.

A variant that cannot run on the device is recorded as skipped with its error, never
left out. ``--output_json`` and ``--output_md`` get the results with the device, the
versions, the command and each part's duration. ``--smoke``: ResNet-8 at 16x16x3,
batch 4, two steps, one round (the test's size); flags given explicitly still win.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

import keras_models  # noqa: E402
from common import (VARIANTS, exported_signatures, interleaved_times, latency_rows,  # noqa: E402
                    one_batch, parse_shape, plain_model, sfocus_model, time_steps)
from sfocus_tf import SFocusModel, data  # noqa: E402
from sfocus_tf.training.build import dtype_policy  # noqa: E402

PARTS = ("one_replica", "mirrored", "attention")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
SFOCUS = ("sfocus_second_order", "sfocus_first_order")
NAMES = ("plain_keras",) + SFOCUS
SIGNATURES = ("attention", "serving_default")
NUM_CLASSES = 10
MIB = 2.0 ** 20

FLAGS = flags.FLAGS
flags.DEFINE_list("parts", list(PARTS), "What to measure: " + ", ".join(PARTS) + ".")
flags.DEFINE_list("models", ["resnet20", "resnet18_cifar"], "Backbones (keras_models "
                  "names); the first one is exported for the attention part.")
flags.DEFINE_string("shape", "32x32x3", "Image shape HxWxC (3 channels: the export "
                    "uses CIFAR-10's normalisation).")
flags.DEFINE_list("batch_sizes", ["128", "512"], "Global batch sizes of the steps.")
flags.DEFINE_list("xla", ["off", "on"], "XLA settings (compile(jit_compile=...)).")
flags.DEFINE_list("precisions", list(PRECISIONS), "Keras dtype policies.")
flags.DEFINE_integer("steps", 10, "Timed steps per variant (split over the rounds).")
flags.DEFINE_integer("rounds", 2, "Interleaved rounds.")
flags.DEFINE_list("serving_batch_sizes", ["1", "64"], "Batch sizes of the attention part.")
flags.DEFINE_integer("calls", 50, "Timed calls per signature and batch size.")
flags.DEFINE_integer("time_budget_s", 270, "Rows of the step parts not started by then "
                     "(seconds from the start) are recorded as skipped; 0: no budget.")
flags.DEFINE_integer("cpu_devices", 0, "Split the CPU into this many logical devices for "
                     "the mirrored part when there is no GPU: it runs the code path for a "
                     "test; its timings mean nothing.")
flags.DEFINE_string("output_json", "runs/bench/accelerator.json", "Results as JSON.")
flags.DEFINE_string("output_md", "runs/bench/accelerator.md", "Results as Markdown.")
flags.DEFINE_bool("smoke", False, "Tiny shapes, for a test: see SMOKE.")

# XLA off: XLA compiles a second-order step for most of a minute on 2 CPU cores.
SMOKE = {"models": ["resnet8"], "shape": "16x16x3", "batch_sizes": ["4"], "xla": ["off"],
         "steps": 2, "rounds": 1, "calls": 3}


def describe(error):
    """One line of an error, for a skipped variant's reason."""
    lines = str(error).strip().splitlines() or [""]
    return f"{type(error).__name__}: {lines[0][:300]}"


def known_failure(name, setting, strategy):
    if name == "plain_keras" and setting["xla"] and strategy.num_replicas_in_sync > 1:
        return ("Keras' compile(jit_compile=True) fails in fit() under MirroredStrategy "
                "(keras-team/keras#18716); SFocusModel XLA-compiles its per-replica step")
    return None


def build_models(setting, strategy):
    """The plain and SFOCUS models of ``setting``, built under its dtype policy in
    ``strategy``'s scope, and {variant: reason} for those that cannot be built."""
    shape = parse_shape(setting["shape"])
    xla = setting["xla"]

    def make(name):
        backbone = keras_models.get(setting["model"], shape, NUM_CLASSES)
        if name == "plain_keras":
            return plain_model(backbone, NUM_CLASSES, xla)
        return sfocus_model(backbone, NUM_CLASSES, VARIANTS[name], xla)

    models, skipped = {}, {}
    with dtype_policy(setting["precision"]), strategy.scope():
        for name in NAMES:
            skipped[name] = known_failure(name, setting, strategy)
            if skipped[name] is None:
                try:
                    models[name] = make(name)
                except Exception as error:  # recorded, never dropped
                    skipped[name] = describe(error)
    return models, {name: reason for name, reason in skipped.items() if reason}


class Turns:
    """``measure`` for ``interleaved_times``: one model's turn of steps, with the peak
    device memory over its turns (the allocator's count, reset before each turn). A
    model that fails is recorded in ``skipped`` and takes no further turns."""

    def __init__(self, models, skipped, devices):
        self.names = {id(model): name for name, model in models.items()}
        self.skipped, self.devices = skipped, devices
        self.memory = {}

    def __call__(self, model, dataset, steps):
        name = self.names[id(model)]
        if name in self.skipped:
            return []
        for device in self.devices:
            tf.config.experimental.reset_memory_stats(device)
        start = [self.memory_info(device)["current"] for device in self.devices]
        try:
            times = time_steps(model, dataset, steps)
        except Exception as error:  # e.g. a precision XLA cannot compile here
            self.skipped[name] = describe(error)
            return []
        if self.devices:
            peaks = [self.memory_info(device)["peak"] for device in self.devices]
            self.record(name, max(peaks), max(p - s for p, s in zip(peaks, start)))
        return times

    @staticmethod
    def memory_info(device):
        return tf.config.experimental.get_memory_info(device)

    def record(self, name, peak, above_start):
        old = self.memory.get(name, {"peak_memory_mib": 0.0, "step_memory_mib": 0.0})
        self.memory[name] = {"peak_memory_mib": max(old["peak_memory_mib"], peak / MIB),
                             "step_memory_mib": max(old["step_memory_mib"], above_start / MIB)}

    def memory_of(self, name):
        # step_memory: what the step allocates beyond what is resident at its start
        # (every variant's weights and optimizer state), the part that differs.
        return self.memory.get(name, {"peak_memory_mib": None, "step_memory_mib": None})


def measure(setting, strategy, devices):
    """One row: each variant's throughput, ratio to plain and peak memory, or why not."""
    start = time.perf_counter()
    models, skipped = build_models(setting, strategy)
    dataset = one_batch(parse_shape(setting["shape"]), NUM_CLASSES, setting["batch"])
    turns = Turns(models, skipped, devices)
    for model in models.values():
        turns(model, dataset, 2)  # trace and compile, untimed
    turns.memory.clear()  # compilation and autotuning allocate more than a step does
    times = interleaved_times(models, dataset, FLAGS.steps, FLAGS.rounds, turns)
    variants = {}
    for name in NAMES:
        if name in skipped:
            variants[name] = {"skipped": skipped[name]}
            continue
        median = float(np.median(times[name]))
        variants[name] = {"median_step_s": median, "images_per_s": setting["batch"] / median,
                          **turns.memory_of(name)}
    plain = variants["plain_keras"].get("images_per_s")
    for name in SFOCUS:
        if "images_per_s" in variants[name]:
            variants[name]["ratio_to_plain"] = (variants[name]["images_per_s"] / plain
                                                if plain else None)
    del models, turns
    keras.backend.clear_session()  # frees this row's models before the next is built
    return dict(setting, variants=variants, seconds=time.perf_counter() - start)


def settings(replicas):
    # float32 first, then the mixed policies: what a spent time budget leaves out last.
    return [{"replicas": replicas, "model": model, "shape": FLAGS.shape, "batch": int(batch),
             "xla": xla == "on", "precision": precision}
            for precision in FLAGS.precisions for model in FLAGS.models
            for xla in FLAGS.xla for batch in FLAGS.batch_sizes]


def not_started(setting):
    reason = f"not started: the time budget (--time_budget_s={FLAGS.time_budget_s}) was spent"
    return dict(setting, variants={name: {"skipped": reason} for name in NAMES}, seconds=0.0)


def training_part(part, deadline, on_row):
    """Calls ``on_row`` with each row; returns None, or the reason the part cannot run."""
    gpus = [device.name for device in tf.config.list_logical_devices("GPU")]
    if part == "one_replica":
        strategy, devices = tf.distribute.get_strategy(), gpus[:1]
    else:
        cpus = [device.name for device in tf.config.list_logical_devices("CPU")]
        mirrored = gpus if len(gpus) > 1 else cpus if FLAGS.cpu_devices > 1 else []
        if len(mirrored) < 2:
            return f"MirroredStrategy needs 2 or more GPUs; {len(gpus)} visible"
        strategy, devices = tf.distribute.MirroredStrategy(mirrored), gpus
    # get_memory_info takes "GPU:0"; logical device names read "/device:GPU:0".
    devices = [name.split("device:")[-1] for name in devices]
    for setting in settings(strategy.num_replicas_in_sync):
        spent = deadline is not None and time.perf_counter() > deadline
        row = dict(not_started(setting) if spent else measure(setting, strategy, devices),
                   part=part)
        print(row_line(row), flush=True)
        on_row(row)
    return None


def attention_part():
    """Latency of the exported signatures of an SFocusModel trained for 0 steps."""
    shape = parse_shape(FLAGS.shape)
    preset = data.get_preset("cifar10", image_size=shape)  # needs no data on disk
    model = SFocusModel(keras_models.get(FLAGS.models[0], shape, preset.num_classes),
                        preset.num_classes)
    batch_sizes = [int(batch) for batch in FLAGS.serving_batch_sizes]
    with tempfile.TemporaryDirectory() as root:
        signatures = exported_signatures(model, preset, root, max(batch_sizes))
        rows = latency_rows(signatures, SIGNATURES, batch_sizes, shape, FLAGS.calls)
    return [dict(row, model=FLAGS.models[0], shape=FLAGS.shape) for row in rows]


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_report():
    """(the device in words, each GPU's details)."""
    gpus = tf.config.list_physical_devices("GPU")
    details = [tf.config.experimental.get_device_details(gpu) for gpu in gpus]
    if not details:
        return f"CPU only: {cpu_name()}, {os.cpu_count()} cores", []
    names = sorted({detail.get("device_name", "GPU") for detail in details})
    return f"{len(gpus)} x {' / '.join(names)}", details


def fmt(value, spec=".0f", missing="-"):
    return missing if value is None else format(value, spec)


def on_off(flag):
    return "on" if flag else "off"


def variant_cell(variant):
    if "skipped" in variant:
        return "skipped"
    ratio = variant.get("ratio_to_plain")
    return fmt(variant["images_per_s"], ".1f") + ("" if ratio is None else f" ({ratio:.2f})")


def memory_cell(row):
    cells = [variant.get("peak_memory_mib") for variant in row["variants"].values()]
    if all(cell is None for cell in cells):
        return "null"
    return " / ".join(fmt(cell) for cell in cells)


def row_line(row):
    return (f"| {row['part']} | {row['model']} | {row['batch']} | {on_off(row['xla'])} | "
            f"{row['precision']} | "
            + " | ".join(variant_cell(row["variants"][name]) for name in NAMES)
            + f" | {memory_cell(row)} | {row['seconds']:.1f} |")


TRAINING_HEADER = (
    "| part | model | batch | XLA | precision | plain img/s | second order img/s (/ plain) "
    "| first order img/s (/ plain) | peak MiB plain / 2nd / 1st | s |\n"
    "|---|---|---|---|---|---|---|---|---|---|")


def markdown(report):
    parts = ", ".join(f"{name} {part['seconds']:.1f} s" + (
        f" (skipped: {part['skipped']})" if part["skipped"] else "")
        for name, part in report["parts"].items())
    lines = ["# Accelerator benchmark (`bench/accelerator.py`)", "",
             f"- **Device:** {report['device']}",
             f"- **Software:** Python {report['python']}, TensorFlow {report['tensorflow']}, "
             f"Keras {report['keras']}",
             f"- **Command:** `{report['command']}`",
             f"- **Date:** {report['date']}; {report['steps']} timed steps per variant "
             f"in {report['rounds']} round(s)",
             f"- **Parts:** {parts}; total {report['seconds']:.1f} s"]
    return "\n".join(lines + training_table(report) + attention_table(report)) + "\n"


def training_table(report):
    rows = report["training"]
    skips = [f"- skipped: {row['part']} {row['model']} batch {row['batch']} XLA "
             f"{on_off(row['xla'])} {row['precision']} {name}: {variant['skipped']}"
             for row in rows for name, variant in row["variants"].items()
             if "skipped" in variant]
    return ((["", TRAINING_HEADER] + [row_line(row) for row in rows] if rows else [])
            + ([""] + skips if skips else []))


def attention_table(report):
    if not report["attention"]:
        return []
    return (["", "| signature | model | batch | p50 ms | p99 ms | p50 ms / image |",
             "|---|---|---|---|---|---|"]
            + [f"| {row['signature']} | {row['model']} | {row['batch']} | {row['p50_ms']:.2f} "
               f"| {row['p99_ms']:.2f} | {row['p50_ms_per_image']:.3f} |"
               for row in report["attention"]])


def write(path, text):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def apply_smoke():
    for name, value in SMOKE.items():
        if not FLAGS[name].present:
            FLAGS[name].value = value


def split_cpu():
    """Before any other TensorFlow work: logical CPU devices for the mirrored test."""
    if FLAGS.cpu_devices > 1 and not tf.config.list_physical_devices("GPU"):
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * FLAGS.cpu_devices)


def save(report):
    """Both files, after every row: a run cut short still leaves what it measured."""
    write(FLAGS.output_json, json.dumps(report, indent=2) + "\n")
    write(FLAGS.output_md, markdown(report))


def new_report():
    device, details = device_report()
    return {"device": device, "device_details": details, "tensorflow": tf.__version__,
            "keras": keras.__version__, "python": platform.python_version(),
            "command": shlex.join(["python"] + sys.argv), "smoke": FLAGS.smoke,
            "date": datetime.date.today().isoformat(), "steps": FLAGS.steps,
            "rounds": FLAGS.rounds, "seconds": 0.0, "parts": {}, "training": [],
            "attention": []}


def run_part(part, report, start):
    if part == "attention":
        report["attention"] += attention_part()
        return None
    def on_row(row):
        report["training"].append(row)
        save(report)

    deadline = start + FLAGS.time_budget_s if FLAGS.time_budget_s > 0 else None
    return training_part(part, deadline, on_row)


def main(argv):
    del argv
    if FLAGS.smoke:
        apply_smoke()
    unknown = (set(FLAGS.parts) - set(PARTS) | set(FLAGS.precisions) - set(PRECISIONS)
               | set(FLAGS.xla) - {"off", "on"})
    if unknown:
        raise app.UsageError(f"unknown parts, precisions or xla settings: "
                             f"{', '.join(sorted(unknown))}")
    split_cpu()
    report = new_report()
    print(f"{report['device']}\n{TRAINING_HEADER}", flush=True)
    start = time.perf_counter()
    for part in FLAGS.parts:
        part_start = time.perf_counter()
        skipped = run_part(part, report, start)
        seconds = time.perf_counter() - part_start
        report["parts"][part] = {"seconds": seconds, "skipped": skipped}
        report["seconds"] = time.perf_counter() - start
        save(report)
        print(f"{part}: {seconds:.1f} s" + (f" (skipped: {skipped})" if skipped else ""),
              flush=True)
    print(markdown(report))


if __name__ == "__main__":
    app.run(main)
