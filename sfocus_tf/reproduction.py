"""Baseline against SFOCUS with identical recipes over K seeds (``sfocus-reproduce``).

Each (arm, seed) run is an ordinary ``train_and_evaluate`` run in
``workdir/<arm>/seed-<s>/``; finished runs are not redone, so a study resumes. The
table (``results.md``, ``results.json``) gives per arm the mean and standard
deviation over seeds of test accuracy, attention overlap and consistency, and
training time, plus the paired difference SFOCUS - baseline.
"""

from __future__ import annotations

import os

import numpy as np

from sfocus_tf.checkpointing import atomic_path, read_json, write_json
from sfocus_tf.config import SFocusConfig
from sfocus_tf.train_config import TrainConfig
from sfocus_tf.training import train_and_evaluate

# Recipes: the dataset presets' schedules, with the backbones of the paper's setting
# where one applies. ``fashion_mnist_cpu`` is sized for 2 CPU cores (< 2 h, 3 seeds).
PRESETS = {
    "fashion_mnist_cpu": TrainConfig(dataset="fashion_mnist", model="resnet8", epochs=4,
                                     learning_rate=0.1, schedule="cosine"),
    "cifar100": TrainConfig(dataset="cifar100", model="resnet18_cifar"),
    "caltech256": TrainConfig(dataset="caltech256", model="resnet50"),
    "cub200": TrainConfig(dataset="caltech_birds2011", model="resnet50"),
    "imagenet": TrainConfig(dataset="imagenet2012", model="resnet50"),
    "voc2012": TrainConfig(dataset="voc/2012", model="resnet50"),
}
ARMS = {"baseline": SFocusConfig().baseline(), "sfocus": SFocusConfig()}
REPORTED = (("test_accuracy", "accuracy"), ("attention_overlap", "overlap"),
            ("attention_consistency", "consistency"), ("train_seconds", "train s"))


def run_study(base: TrainConfig, seeds, workdir: str) -> dict:
    """Trains every (arm, seed) not finished yet; returns the summary it writes."""
    runs = {}
    for seed in seeds:  # seed-major, so an interrupted study still has pairs
        for arm, sfocus in ARMS.items():
            run_dir = os.path.join(workdir, arm, f"seed-{seed}")
            metrics = read_json(os.path.join(run_dir, "metrics.json"))
            if metrics is None:
                metrics = train_and_evaluate(base.replace(seed=seed, sfocus=sfocus), run_dir)
            runs.setdefault(arm, {})[seed] = metrics
    summary = summarise(runs, base, seeds)
    write_json(os.path.join(workdir, "results.json"), summary)
    with atomic_path(os.path.join(workdir, "results.md"), ".md") as temporary:
        with open(temporary, "w") as f:
            f.write(markdown(summary))
    return summary


def summarise(runs: dict, base: TrainConfig, seeds) -> dict:
    arms = {}
    for arm, by_seed in runs.items():
        arms[arm] = {label: _mean_std([by_seed[s][key] for s in seeds])
                     for key, label in REPORTED}
        arms[arm]["per_seed"] = {str(s): {label: by_seed[s][key] for key, label in REPORTED}
                                 for s in seeds}
    paired = [runs["sfocus"][s]["test_accuracy"] - runs["baseline"][s]["test_accuracy"]
              for s in seeds]
    return {"config": base.to_dict(), "seeds": list(seeds), "arms": arms,
            "accuracy_difference": _mean_std(paired),
            "sfocus_better_in": sum(d > 0 for d in paired)}


def _mean_std(values):
    values = np.asarray(values, dtype=float)
    std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return {"mean": float(values.mean()), "std": std, "n": int(len(values))}


def markdown(summary: dict) -> str:
    lines = ["| arm | " + " | ".join(label for _, label in REPORTED) + " |",
             "|---|" + "---|" * len(REPORTED)]
    for arm, stats in summary["arms"].items():
        cells = [_cell(stats[label], label) for _, label in REPORTED]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    diff = summary["accuracy_difference"]
    lines += ["", f"SFOCUS - baseline test accuracy, paired by seed: "
                  f"{100 * diff['mean']:+.2f} ± {100 * diff['std']:.2f} points "
                  f"(SFOCUS higher in {summary['sfocus_better_in']} of {diff['n']} seeds)."]
    return "\n".join(lines) + "\n"


def _cell(stats, label):
    if label == "train s":
        return f"{stats['mean']:.0f} ± {stats['std']:.0f}"
    if label == "accuracy":
        return f"{100 * stats['mean']:.2f} ± {100 * stats['std']:.2f}"
    return f"{stats['mean']:.4f} ± {stats['std']:.4f}"
