"""Named SFOCUS readings against the baseline, identical recipes, K seeds (``sfocus-reproduce``).

Each (arm, seed) run is an ordinary ``train_and_evaluate`` run in
``workdir/<arm>/seed-<s>/``; finished runs (a ``metrics.json``) are not redone, so a
study resumes, and a study whose small metrics files are committed reruns nothing.
The table (``results.md``, ``results.json``) gives per arm the mean and standard
deviation over seeds of accuracy, the accuracy difference to the baseline paired
by seed (with its paired tests from two seeds on: ``paired_tests``), attention overlap (soft, top-20 % and peak distance, each with its chance
level, and at the inner layer), consistency, the shares of empty maps, faithfulness
(against random positions), localisation where the data has boxes, the black-white
loss on the test set where the backbone has class blocks (the ++ arms), and training
time.
"""

from __future__ import annotations

import os

import numpy as np

from sfocus_tf.studies import paired_tests, parallel_runs
from sfocus_tf.training import hparams
from sfocus_tf.evaluation import overlays
from sfocus_tf.configs import run_dir
from sfocus_tf.common import run_lock
from sfocus_tf.common.files import write_json, write_text
from sfocus_tf.modeling.sfocus_config import SFocusConfig
from sfocus_tf.configs.train_config import TrainConfig
from sfocus_tf.training.inputs import steps_per_epoch
from sfocus_tf.training.train import train_and_evaluate

# The reading the project started from (Grad-CAM of the logit, mean gradient weights,
# second order, relu maps, unit weights, no warm-up). Arms are written as changes to
# it, so that they keep their meaning when SFocusConfig's defaults change.
INITIAL = SFocusConfig(class_score="logit", gradcam_weights="mean", second_order=True,
                       map_activation="relu", w_as_last=1.0, w_as_in=1.0, w_ac=1.0,
                       warmup_steps=0, ramp_steps=0)
READINGS = {
    "baseline": INITIAL.baseline(),
    "initial_default": INITIAL,
    "first_order": INITIAL.replace(second_order=False),
    "relu_mean": INITIAL.replace(gradcam_weights="relu_mean"),
    # The public re-implementations' reading: positive-gradient weights, held constant.
    "public_reading": INITIAL.replace(second_order=False, gradcam_weights="relu_mean"),
    "no_consistency": INITIAL.replace(w_ac=0.0),
    "weights_0.1": INITIAL.replace(w_as_last=0.1, w_as_in=0.1, w_ac=0.1),
    "warmup": INITIAL,  # its warm-up is set from the run's length: see WARMED_UP
    "log_prob": INITIAL.replace(class_score="log_prob"),
    "logit_difference": INITIAL.replace(class_score="logit_difference"),
    "abs": INITIAL.replace(map_activation="abs"),
    "softmax": INITIAL.replace(map_activation="softmax"),
    # The best of the single changes on the first seed, with the warm-up added.
    "public_warmup": INITIAL.replace(second_order=False, gradcam_weights="relu_mean"),
}
# The pilot of the default (docs/default_study.md): the softmax reading with one term off at a
# time, its scale-free form, and relu maps at a tenth of the weight, separability at the
# last layer only.
SOFTMAX = INITIAL.replace(map_activation="softmax")
PILOT = {
    "softmax_no_separability": SOFTMAX.replace(w_as_last=0.0, w_as_in=0.0),
    "softmax_no_consistency": SOFTMAX.replace(w_ac=0.0),
    "softmax_std": SOFTMAX.replace(map_temperature="spatial_std", ac_mask="resized_map"),
    "relu_0.1_last": INITIAL.replace(w_as_last=0.1, w_as_in=0.1, w_ac=0.1,
                                     as_layers="last"),
}
READINGS.update(PILOT)
# The "++" variant (keras_models.class_blocks): per-class last blocks of width 13, which
# gives ResNet-8 with 10 classes about its plain parameter count (+3 %). plusplus: the
# current default reading (softmax maps) plus the black-white loss; plusplus_plain: the
# same backbone with cross-entropy only, to separate the backbone from the losses.
PLUSPLUS_WIDTH = 13
PLUSPLUS = {
    "plusplus": INITIAL.replace(map_activation="softmax", w_bw=1.0),
    "plusplus_plain": INITIAL.baseline(),
}
ARMS = {**READINGS, **PLUSPLUS}
# TrainConfig fields an arm changes besides its SFocusConfig.
ARM_FIELDS = {arm: {"class_block_width": PLUSPLUS_WIDTH} for arm in PLUSPLUS}
# Arms whose attention weights are 0 for the first WARMUP_FRACTION of the run's
# optimizer steps, then ramp up over the next RAMP_FRACTION.
WARMED_UP = ("warmup", "public_warmup")
WARMUP_FRACTION, RAMP_FRACTION = 0.25, 0.25
GRIDS = {
    "default": ("baseline", "sfocus"),
    "readings": tuple(name for name in READINGS if name not in PILOT),
    "pilot": ("baseline", "softmax", *PILOT, "public_reading"),
    "plusplus": ("baseline", "plusplus", "plusplus_plain"),
}
# What a study table shows, read from metrics.json or else from the last epoch of its
# history (the diagnostics). Studies select on the validation figures; the test
# figures are tabulated only when asked for (``report_test``), once, at the end.
# The attention figures of evaluation.evaluate (unprefixed on the test split), each
# overlap beside its chance level, the faithfulness drop beside its random baseline.
SEPARATION = (
    ("attention_overlap", "overlap"), ("attention_overlap_chance", "overlap chance"),
    ("top20_overlap", "top-20% overlap"), ("top20_overlap_chance", "top-20% chance"),
    ("peak_distance", "peak distance"), ("peak_distance_chance", "peak distance chance"),
    ("attention_overlap_inner", "overlap inner"), ("attention_consistency", "consistency"))
FAITHFULNESS = (("faithfulness_drop", "faithfulness drop"),
                ("faithfulness_drop_random", "drop random"))
# Each localisation figure beside what maps that learnt nothing score (the ink map, the
# uniform map: evaluation.localisation); the distractor figures where images have
# objects of other classes (fashion_mnist_duo).
LOCALISED = (
    ("energy_inside_box", "energy in box"), ("energy_inside_box_normalised", "normalised"),
    ("box_ink_energy", "ink map"), ("box_area", "uniform map"),
    ("pointing_game", "pointing game"), ("box_ink_pointing", "ink map pointing"),
    ("energy_in_distractor_box", "T energy in distractor"),
    ("confusing_energy_in_distractor_box", "C energy in distractor"),
    ("confusing_energy_in_distractor_box_normalised", "C normalised"),
    ("distractor_ink_energy", "ink map in distractor"),
    ("distractor_box_area", "uniform map in distractor"),
    ("confusing_pointing_at_distractor", "C pointing at distractor"),
    ("distractor_ink_pointing", "ink map pointing at distractor"),
    ("confusing_is_distractor", "C is distractor's class"),
    ("confusing_is_distractor_chance", "C is distractor's chance"))


def _validation(columns):
    return tuple((f"validation_{key}", label) for key, label in columns)


VALIDATION_REPORTED = (
    ("validation_accuracy", "accuracy"),
    ("grad_ratio_as_last", "grad ratio AS last"), ("grad_ratio_as_inner", "grad ratio AS inner"),
    ("grad_ratio_ac", "grad ratio AC"),
    ("val_area_target_last", "area T last"), ("val_area_target_inner", "area T inner"),
    ("val_empty_target_last", "empty T last"), ("val_empty_confusing_last", "empty C last"),
    ("val_empty_target_inner", "empty T inner"),
    ("val_empty_confusing_inner", "empty C inner"),
    *_validation(SEPARATION + FAITHFULNESS + LOCALISED), ("train_seconds", "train s"))
TEST_REPORTED = (
    ("test_accuracy", "accuracy"), *SEPARATION,
    ("empty_target_map", "empty T"), ("empty_confusing_map", "empty C"),
    ("empty_target_map_inner", "empty T inner"),
    ("empty_confusing_map_inner", "empty C inner"),
    *FAITHFULNESS, *LOCALISED, ("test_bw", "L_BW"))
REPORTED = {"validation": VALIDATION_REPORTED, "test": TEST_REPORTED}
ACCURACY = {"validation": "validation_accuracy", "test": "test_accuracy"}
# The accuracy difference within which an arm counts as level with the baseline (the
# equivalence test of the paired tests): half a point.
EQUIVALENCE_MARGIN = 0.005
# measured where the data has boxes
LOCALISATION = tuple(key for key, _ in LOCALISED + _validation(LOCALISED))


def arm_config(arm: str, total_steps: int) -> SFocusConfig:
    """The SFocusConfig of a named arm; ``sfocus`` is the current ``SFocusConfig()``."""
    if arm == "sfocus":
        return SFocusConfig()
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; valid arms: sfocus, {', '.join(ARMS)}")
    if arm in WARMED_UP:
        return ARMS[arm].replace(warmup_steps=int(WARMUP_FRACTION * total_steps),
                                 ramp_steps=int(RAMP_FRACTION * total_steps))
    return ARMS[arm]


def run_study(base: TrainConfig, seeds, workdir: str, arms=GRIDS["default"],
              train: bool = True, report_test: bool = False, parallel: int = 1) -> dict:
    """Trains every (arm, seed) not finished yet; returns the summary it writes.
    The ``sfocus`` arm trains ``base.sfocus``, the other arms their ``arm_config`` (and
    the ``ARM_FIELDS`` of the ++ arms).
    ``arms`` must include ``baseline``, which every other arm is paired with.
    ``train=False`` only tabulates the runs that are finished (a study in progress).
    ``results.md`` holds the validation table, and the test table with ``report_test``
    (``results.json`` always holds both). ``parallel`` > 1 trains that many runs at
    once, each in its own ``sfocus-train`` process (``parallel_runs``)."""
    arms = tuple(dict.fromkeys(arms))
    if "baseline" not in arms:
        raise ValueError("a study needs the 'baseline' arm to pair the others with")
    if parallel < 1:
        raise ValueError(f"parallel must be a positive number of processes, got {parallel}")
    with run_lock.exclusive(workdir, "a study"):
        return _run_study(base, seeds, workdir, arms, train, report_test, parallel)


def _run_study(base, seeds, workdir, arms, train, report_test, parallel) -> dict:
    preset = base.preset()
    resolved = base.resolve(preset)
    total_steps = resolved.epochs * steps_per_epoch(resolved, preset)
    configs = {(arm, seed): base.replace(  # seed-major, so an interrupted study has pairs
                   seed=seed, sfocus=base.sfocus if arm == "sfocus" else
                   arm_config(arm, total_steps), **ARM_FIELDS.get(arm, {}))
               for seed in seeds for arm in arms}
    write_hparams_config(workdir, [config.resolve(preset) for config in configs.values()],
                         preset.has_boxes)
    run_of = {key: os.path.join(workdir, key[0], f"seed-{key[1]}") for key in configs}
    if train and parallel > 1:
        parallel_runs.train_all({run_of[key]: config for key, config in configs.items()
                                 if run_dir.read_metrics(run_of[key]) is None}, parallel)
    runs = {}
    for key, config in configs.items():
        metrics = run_dir.read_metrics(run_of[key])
        if metrics is None and train:
            # the study writes the one HParams table over its runs
            metrics = train_and_evaluate(config, run_of[key], hparams_table=False)
        if metrics is not None:
            runs.setdefault(key[0], {})[key[1]] = metrics
    summary = summarise(runs, base, seeds)
    write_json(os.path.join(workdir, "results.json"), summary)
    write_text(os.path.join(workdir, "results.md"), markdown(summary, report_test))
    return summary


def write_hparams_config(workdir: str, configs, has_boxes: bool) -> None:
    """The study's table in TensorBoard's HParams tab (``tensorboard --logdir=workdir``):
    one row per run, the config fields its arms and seeds differ in, the reported
    test metrics (``tensorboard/trial/test/`` and ``validation/`` of each run)."""
    reported = [(key, f"val {label}") for key, label in VALIDATION_REPORTED
                if key.startswith("validation_")] + list(TEST_REPORTED)
    metrics = [hparams.final_metric(key, label)
               for key, label in reported if has_boxes or key not in LOCALISATION]
    hparams.write_study(workdir, hparams.differing_hparams(configs), metrics)


def compare_overlays(workdir: str, arms, seed: int) -> str:
    """``workdir/overlays-seed-<seed>.png``: each arm's final overlays of the same
    images (validation ones; test ones for runs on the full training set), true and
    confusing class per layer, standard Grad-CAM, side by side."""
    grids = [overlays.load_png(run_dir.path(workdir, arm, f"seed-{seed}", run_dir.ATTENTION,
                                            run_dir.FINAL_OVERLAYS)) for arm in arms]
    path = os.path.join(workdir, f"overlays-seed-{seed}.png")
    overlays.save_png(path, overlays.side_by_side(grids, list(arms)))
    return path


def summarise(runs: dict, base: TrainConfig, seeds) -> dict:
    """Per split (validation, test) and arm, statistics over the seeds the arm has
    finished; the accuracy difference to the baseline paired over the seeds that both
    have."""
    return {"config": base.to_dict(), "seeds": list(seeds),
            **{split: _summarise_split(runs, seeds, split) for split in REPORTED}}


def _summarise_split(runs: dict, seeds, split: str) -> dict:
    arms = {}
    accuracy = ACCURACY[split]
    baseline = runs.get("baseline", {})
    for arm, by_seed in runs.items():
        done = [s for s in seeds if s in by_seed]
        values = {s: _reported_values(by_seed[s], split) for s in done}
        reported = [(key, label) for key, label in REPORTED[split]
                    if done and all(key in values[s] for s in done)]
        arms[arm] = {label: _mean_std([values[s][key] for s in done])
                     for key, label in reported}
        arms[arm]["per_seed"] = {str(s): {label: values[s][key] for key, label in reported}
                                 for s in done}
        pairs = [s for s in done if s in baseline and accuracy in by_seed[s]
                 and accuracy in baseline[s]]
        if arm != "baseline" and pairs:
            paired = [by_seed[s][accuracy] - baseline[s][accuracy] for s in pairs]
            arms[arm]["accuracy_difference"] = _mean_std(paired)
            arms[arm]["better_than_baseline_in"] = int(sum(d > 0 for d in paired))
            if len(paired) >= 2:
                arms[arm]["paired_tests"] = paired_tests.paired_comparison(
                    paired, margin=EQUIVALENCE_MARGIN)
    return arms


def _reported_values(metrics: dict, split: str) -> dict:
    """The reported figures of one run: ``metrics.json``'s, then its last epoch's."""
    history = metrics.get("history") or {}
    last = history[max(history, key=int)] if history else {}
    return {key: metrics[key] if key in metrics else last[key]
            for key, _ in REPORTED[split] if key in metrics or key in last}


def _mean_std(values):
    values = np.asarray(values, dtype=float)
    std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return {"mean": float(values.mean()), "std": std, "n": int(len(values))}


def markdown(summary: dict, report_test: bool = False) -> str:
    """The validation table, and with ``report_test`` the test table after it."""
    splits = ("validation", "test") if report_test else ("validation",)
    return "\n".join(_split_table(summary, split) for split in splits)


def _split_table(summary: dict, split: str) -> str:
    arms = summary[split]
    labels = [label for _, label in REPORTED[split]
              if any(label in stats for stats in arms.values())]
    lines = [f"**{split}**", "",
             "| arm | seeds | accuracy − baseline (paired) | " + " | ".join(labels) + " |",
             "|---|---|---|" + "---|" * len(labels)]
    for arm, stats in arms.items():
        diff = stats.get("accuracy_difference")
        paired = "" if diff is None else (
            f"{100 * diff['mean']:+.2f} ± {100 * diff['std']:.2f} "
            f"({stats['better_than_baseline_in']}/{diff['n']} better)")
        cells = [_cell(stats[label], label) if label in stats else "" for label in labels]
        seeds_done = len(stats["per_seed"])
        lines.append(f"| {arm} | {seeds_done} | {paired} | " + " | ".join(cells) + " |")
    lines += ["", f"Mean ± standard deviation over the finished runs of seeds "
                  f"{summary['seeds']}, on the {split} split; the paired column is "
                  f"the arm's {split} accuracy minus the baseline's with the same seed, in "
                  "points, and in how many seeds the arm was higher."]
    return "\n".join(lines + _tests_table(arms, split)) + "\n"


def _tests_table(arms: dict, split: str) -> list:
    """The paired tests of every arm with two seeds or more, in points."""
    tested = {arm: stats["paired_tests"] for arm, stats in arms.items()
              if "paired_tests" in stats}
    if not tested:
        return []
    margin = 100 * EQUIVALENCE_MARGIN
    lines = ["", f"Paired tests of the {split} accuracy difference (points): its 95 % "
                 "interval (Student's t), a two-sided paired t-test, an exact two-sided "
                 f"Wilcoxon signed-rank test, and an equivalence test at ±{margin:.1f} "
                 "points (two one-sided t-tests: equivalent when p < 0.05).", "",
             "| arm | seeds | mean | 95 % interval | t | p (t) | p (Wilcoxon, exact) | "
             f"p (equivalence ±{margin:.1f}) | equivalent |",
             "|---|---|---|---|---|---|---|---|---|"]
    for arm, test in tested.items():
        lines.append(
            f"| {arm} | {test['n']} | {100 * test['mean']:+.2f} | "
            f"[{100 * test['ci_low']:+.2f}, {100 * test['ci_high']:+.2f}] | "
            f"{test['t']:.2f} | {test['p_t']:.3f} | {test['p_wilcoxon']:.3f} | "
            f"{test['p_equivalence']:.3f} | {'yes' if test['equivalent'] else 'no'} |")
    return lines


def _cell(stats, label):
    if label == "train s":
        return f"{stats['mean']:.0f} ± {stats['std']:.0f}"
    if label == "accuracy":
        return f"{100 * stats['mean']:.2f} ± {100 * stats['std']:.2f}"
    return f"{stats['mean']:.3f} ± {stats['std']:.3f}"
