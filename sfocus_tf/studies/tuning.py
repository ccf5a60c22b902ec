"""Keras Tuner search over the SFOCUS loss weights, sigma, theta and the learning rate.

    results = search(base_config, workdir, SearchSpace.parse("w_ac=0:2,lr=0.01:0.3:log"))

Writes into ``workdir``: ``results.md`` and ``results.json`` (one row per trial:
id, status, score, values), ``best.flags`` (a flagfile that ``sfocus-train``
accepts), ``tensorboard/<trial>/execution0/`` (each trial's curves and its
hyperparameters, for TensorBoard's HParams tab, whose table config is in
``tensorboard/`` itself) and the tuner's own state in
``tuner/``. Progress shows as Keras Tuner prints it: each trial's values, its
epochs (a live bar on a terminal, a line per epoch otherwise) and its result
beside the best so far. Keras Tuner records a trial
that raised as FAILED/INVALID and carries on (after ``max_consecutive_failed_trials``
it gives up): every trial's status is read back and reported, and
``SearchResults.ok`` is False unless all of them completed.

Trials are scored on the validation images held out of the training split, as in
training (``sfocus_tf.data.splits``); the test split is never read here.
"""

from __future__ import annotations

import dataclasses
import os

import keras
import keras_tuner as kt
from tensorboard.plugins.hparams import api as hparams_api

from sfocus_tf.training import distribute, hparams, tensorboard_logs
from sfocus_tf.configs import run_dir
from sfocus_tf.modeling import terms
from sfocus_tf.evaluation.evaluate import progress_verbosity
from sfocus_tf.common import run_lock
from sfocus_tf.common.files import makedirs, write_json, write_text
from sfocus_tf.common.config_flags import config_to_flags
from sfocus_tf.configs.train_config import TrainConfig
from sfocus_tf.training.build import compiled_model
from sfocus_tf.training.inputs import make_datasets

TUNERS = ("random", "bayesian", "hyperband")
SFOCUS_PARAMETERS = terms.WEIGHT_FIELDS + ("sigma", "theta")


@dataclasses.dataclass(frozen=True)
class Range:
    low: float
    high: float
    log: bool = False


DEFAULT_RANGES = {
    **{weight: Range(0.0, 2.0) for weight in terms.WEIGHT_FIELDS},
    "sigma": Range(0.3, 0.8), "theta": Range(0.5, 1.0), "lr": Range(1e-3, 0.3, log=True),
}


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """Which parameters are searched, and over what range."""

    ranges: tuple = tuple(DEFAULT_RANGES.items())

    @classmethod
    def parse(cls, text: str) -> "SearchSpace":
        """``"w_ac=0:2,lr=0.001:0.3:log"`` overrides those ranges; ``"name=fixed"``
        leaves a parameter out of the search (the base config's value is used)."""
        ranges = dict(DEFAULT_RANGES)
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, _, spec = item.partition("=")
            if name not in DEFAULT_RANGES:
                raise ValueError(f"unknown search parameter {name!r}; valid: "
                                 f"{', '.join(DEFAULT_RANGES)}")
            if spec == "fixed":
                ranges.pop(name)
                continue
            parts = spec.split(":")
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "log"):
                raise ValueError(f"range {item!r} must read name=low:high[:log]")
            low, high = float(parts[0]), float(parts[1])
            if not low < high or (len(parts) == 3 and low <= 0):
                raise ValueError(f"range {item!r}: need low < high (and low > 0 for log)")
            ranges[name] = Range(low, high, len(parts) == 3)
        return cls(tuple(ranges.items()))

    def for_config(self, base: TrainConfig) -> "SearchSpace":
        """The space without the weights of terms ``base``'s backbone cannot compute
        (``w_bw`` needs per-class last blocks)."""
        if base.class_block_width is not None:
            return self
        dropped = {term.weight for term in terms.TERMS if term.class_blocks}
        return SearchSpace(tuple((name, r) for name, r in self.ranges if name not in dropped))

    def sample(self, hp: kt.HyperParameters) -> dict:
        return {name: hp.Float(name, r.low, r.high, sampling="log" if r.log else "linear")
                for name, r in self.ranges}


def apply_values(base: TrainConfig, values: dict) -> TrainConfig:
    """``base`` with searched values in place (``lr`` is the learning rate)."""
    sfocus = base.sfocus.replace(**{k: v for k, v in values.items() if k in SFOCUS_PARAMETERS})
    return base.replace(sfocus=sfocus, learning_rate=values.get("lr", base.learning_rate))


class SFocusHyperModel(kt.HyperModel):
    """Builds and compiles an SFocusModel for one trial's values, exactly as
    ``sfocus-train`` would (the searched values never change the dataset preset)."""

    def __init__(self, base: TrainConfig, space: SearchSpace, steps_per_epoch: int, *,
                 preset=None):
        super().__init__(name="sfocus")
        self.base, self.space, self.steps_per_epoch = base, space, steps_per_epoch
        self.preset = base.preset() if preset is None else preset

    def build(self, hp):
        config = apply_values(self.base, self.space.sample(hp))
        return compiled_model(config, self.preset, self.steps_per_epoch)


@dataclasses.dataclass
class SearchResults:
    rows: list
    best_values: dict | None
    best_flagfile: str | None

    @property
    def failed(self) -> list:
        """The trials that did not complete."""
        return [row for row in self.rows if row["status"] != "COMPLETED"]

    @property
    def ok(self) -> bool:
        return bool(self.rows) and not self.failed


def make_strategy(name: str):
    """The trials' strategy; trials run one after another in this process."""
    if name == "multi_worker":
        raise ValueError("sfocus-tune runs its trials in one process: strategy=multi_worker "
                         "is not supported (use auto, mirrored or one_device)")
    return distribute.make_strategy(name)


def make_tuner(kind, hypermodel, *, objective, direction, max_trials, epochs, seed, directory,
               strategy=None):
    common = dict(objective=kt.Objective(objective, direction), seed=seed,
                  directory=directory, project_name="search", overwrite=False,
                  distribution_strategy=strategy)
    if kind == "random":
        return kt.RandomSearch(hypermodel, max_trials=max_trials, **common)
    if kind == "bayesian":
        return kt.BayesianOptimization(hypermodel, max_trials=max_trials, **common)
    if kind == "hyperband":
        return kt.Hyperband(hypermodel, max_epochs=epochs, **common)
    raise ValueError(f"unknown tuner {kind!r}; valid: {', '.join(TUNERS)}")


def trial_rows(tuner) -> list:
    rows = []
    for trial_id, trial in sorted(tuner.oracle.trials.items()):
        message = (trial.message or "").strip().splitlines()
        rows.append({"trial": trial_id, "status": str(trial.status),
                     "score": trial.score, "values": dict(trial.hyperparameters.values),
                     "error": message[-1] if message else ""})
    return rows


def write_table(path: str, rows: list, objective: str) -> None:
    names = sorted({name for row in rows for name in row["values"]})
    lines = [f"| trial | status | {objective} | " + " | ".join(names) + " | error |",
             "|" + "---|" * (len(names) + 4)]
    for row in rows:
        score = "" if row["score"] is None else f"{row['score']:.4f}"
        values = " | ".join(_fmt(row["values"].get(n)) for n in names)
        lines.append(f"| {row['trial']} | {row['status']} | {score} | {values} | "
                     f"{row['error'][:120]} |")
    write_text(path, "\n".join(lines) + "\n")


def _fmt(value):
    return "" if value is None else (f"{value:.4g}" if isinstance(value, float) else str(value))


def write_hparams_config(logdir: str, space: SearchSpace, objective: str) -> None:
    """The search's table in TensorBoard's HParams tab: the searched values (as Keras
    Tuner writes them for each trial) and the last epoch's objective, loss and
    accuracy."""
    searched = [hparams_api.HParam(name, hparams_api.RealInterval(r.low, r.high))
                for name, r in space.ranges]
    logs = dict.fromkeys((objective, "val_loss", "val_accuracy", "loss"))
    hparams.write_study(logdir, searched, [hparams.epoch_metric(name) for name in logs])


def search(base: TrainConfig, workdir: str, space: SearchSpace = SearchSpace(), *,
           tuner: str = "random", max_trials: int = 10, objective: str = "val_accuracy",
           direction: str = "max") -> SearchResults:
    """Runs the search; returns (and writes) every trial's outcome and the best flagfile.
    A ``workdir`` another process is searching in is refused at once (``run_lock``)."""
    preset = base.preset()  # the search's one look-up of its dataset, passed down
    base = base.resolve(preset)
    strategy = make_strategy(base.strategy)  # before any other TF work
    makedirs(workdir)
    with run_lock.exclusive(workdir, "a tuner search"):
        return _search(base, preset, strategy, workdir, space, tuner=tuner,
                       max_trials=max_trials, objective=objective, direction=direction)


def _search(base, preset, strategy, workdir, space, *, tuner, max_trials, objective,
            direction) -> SearchResults:
    keras.utils.set_random_seed(base.seed)
    space = space.for_config(base)  # the weights this backbone's terms can use
    if base.full_training_set:
        raise ValueError("the tuner selects on the validation images held out of training; "
                         "full_training_set=True leaves none")
    train, validation, steps_per_epoch = make_datasets(base, preset)
    hypermodel = SFocusHyperModel(base, space, steps_per_epoch, preset=preset)
    engine = make_tuner(tuner, hypermodel, objective=objective, direction=direction,
                        max_trials=max_trials, epochs=base.epochs, seed=base.seed,
                        directory=os.path.join(workdir, "tuner"), strategy=strategy)
    # Keras Tuner gives the TensorBoard callback one folder per trial and adds the
    # trial's hyperparameters (the HParams plugin's summary) to it.
    tensorboard = tensorboard_logs.TensorBoard(run_dir.path(workdir, run_dir.TENSORBOARD))
    write_hparams_config(run_dir.path(workdir, run_dir.TENSORBOARD), space, objective)
    error = None
    try:
        engine.search(train, epochs=base.epochs, steps_per_epoch=steps_per_epoch,
                      validation_data=validation, validation_steps=base.eval_steps,
                      callbacks=[tensorboard], verbose=progress_verbosity())
    except RuntimeError as stopped:  # too many failed trials in a row
        error = stopped
    rows = trial_rows(engine)
    write_table(os.path.join(workdir, "results.md"), rows, objective)
    completed = [row for row in rows if row["status"] == "COMPLETED" and row["score"] is not None]
    best = (max if direction == "max" else min)(completed, key=lambda r: r["score"], default=None)
    flagfile = None
    if best is not None:
        flagfile = os.path.join(workdir, "best.flags")
        write_text(flagfile,
                   "\n".join(config_to_flags(apply_values(base, best["values"]))) + "\n")
    write_json(os.path.join(workdir, "results.json"),
               {"objective": objective, "direction": direction, "tuner": tuner,
                "trials": rows, "best": best, "stopped_early": str(error) if error else None})
    return SearchResults(rows, best["values"] if best else None, flagfile)
