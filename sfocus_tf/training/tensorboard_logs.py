"""What a run writes to TensorBoard: scalars with their descriptions, on one step axis.

Every chart's x-axis is the optimizer step count when the value was recorded: epoch
means (``train/``, ``validation/``) at the step that ended the epoch, the learning
rate (``train/``, ``optimizer/learning_rate``) at every step, as the value the next
step uses (the first point is the starting value), the attention overlays
(``attention/``) at epoch ends, and the final evaluation (the numbers of
``metrics.json``) at the last step, each in its split's folder under the tag the
epochs use (``tensorboard_tags``). Each scalar carries its one-line description
(``metrics.DESCRIPTIONS``, ``terms.TERMS``), which the Scalars tab shows beside the
chart (the Time Series tab shows none).
"""

from __future__ import annotations

import os

import keras
import tensorflow as tf

from sfocus_tf.evaluation import localisation
from sfocus_tf.modeling import fit_metrics
from sfocus_tf.modeling.gradcam import MAP_NAMES
from sfocus_tf.training import tensorboard_tags
from sfocus_tf.training.tensorboard_tags import TRAIN, VALIDATION

LEARNING_RATE = "learning_rate"

# metrics.json numbers that are not measurements of the model: not charted.
BOOKKEEPING = ("epochs", "steps_per_epoch", "resumed_from_epoch", "resumed_from_step",
               "resumed_from_global_step", "replicas")
# metrics.json measurements besides test_<metric> (evaluation.evaluate).
FINAL_DESCRIPTIONS = {
    "attention_overlap": "test set, standard Grad-CAM: mean overlap of the true-class and "
                         "confusing-class last-layer maps (lower: better separated)",
    "attention_consistency": "test set, standard Grad-CAM: mean share of the inner "
                             "true-class map inside the last layer's mask (higher: the "
                             "layers agree)",
    "attention_overlap_chance": "test set: the overlap of each true-class map with the "
                                "confusing-class map of another image (chance level)",
    "attention_overlap_inner": "test set, standard Grad-CAM: mean overlap of the "
                               "true-class and confusing-class inner-layer maps",
    "top20_overlap": "test set, standard Grad-CAM: Dice overlap of the true-class and "
                     "confusing-class last-layer maps' top 20 % positions",
    "top20_overlap_chance": "test set: top20_overlap against another image's confusing "
                            "map (chance level)",
    "peak_distance": "test set, standard Grad-CAM: distance of the two last-layer maps' "
                     "peaks, in map diagonals (higher: better separated)",
    "peak_distance_chance": "test set: peak_distance against another image's confusing "
                            "map (chance level)",
    "empty_target_map": "test set: share of true-class last-layer maps whose raw peak is "
                        "below 1e-3 of the confusing map's (standard Grad-CAM)",
    "empty_confusing_map": "test set: share of confusing-class last-layer maps whose raw "
                           "peak is below 1e-3 of the true-class map's (standard Grad-CAM)",
    "empty_target_map_inner": "test set: empty_target_map at the inner layer",
    "empty_confusing_map_inner": "test set: empty_confusing_map at the inner layer",
    "faithfulness_drop": "test set: mean drop of the true-class probability when the "
                         "image under the map's top 10 % positions is erased",
    "faithfulness_drop_random": "test set: the same drop for as many random positions",
    **{name: f"test set: {text}" for name, text in localisation.DESCRIPTIONS.items()},
    "test_examples": "test set: examples evaluated",
    "train_seconds": "seconds spent training, across restarts",
    "eval_seconds": "seconds spent on the final evaluation",
}


def describe(name: str) -> str:
    """The description of a logged scalar: a model metric (``loss``, a term,
    ``accuracy``, ...), ``learning_rate``, or a ``metrics.json`` entry; "" if unknown."""
    if name == LEARNING_RATE:
        return "learning rate the next optimizer step uses"
    if name.startswith("validation_"):
        rest = name[len("validation_"):]
        described = describe(rest) or describe(f"test_{rest}")
        return described.replace("test set", "validation images") if described else ""
    if name.startswith("grad_ratio_"):
        return (f"norm of the weighted {name[len('grad_ratio_'):]} term's gradient over "
                "cross-entropy's, on a fixed batch (0: the term does nothing)")
    if name.startswith("area_"):
        return (f"effective area of the {name[len('area_'):]} maps, as a share of the "
                "positions, on a fixed batch (1 / positions: a point)")
    if name.startswith("empty_") and name[len("empty_"):] in MAP_NAMES:
        return (f"share of the {name[len('empty_'):]} maps that mark no position, under the "
                "run's own reading, on a fixed batch (a map switched off meets separability "
                "for free)")
    if name in FINAL_DESCRIPTIONS:
        return FINAL_DESCRIPTIONS[name]
    if name.startswith("test_") and name[5:] in fit_metrics.DESCRIPTIONS:
        return "test set: " + fit_metrics.DESCRIPTIONS[name[5:]]
    return fit_metrics.DESCRIPTIONS.get(name, "")


def final_metrics(metrics: dict) -> dict:
    """The measurements of ``metrics.json`` that are charted: its numbers, less the
    bookkeeping ones."""
    return {name: value for name, value in metrics.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
            and name not in BOOKKEEPING}


class DescribedScalars:
    """Writes scalars into one summary writer, each tag's description with its first
    value only (TensorBoard reads it from there; repeating it would bloat the
    per-step learning-rate events)."""

    def __init__(self, writer):
        self.writer, self._described = writer, set()

    def write(self, tag: str, name: str, value, step: int) -> None:
        description = None if tag in self._described else describe(name)
        self._described.add(tag)
        with self.writer.as_default():
            tf.summary.scalar(tag, value, step=step, description=description)


def final_places(metrics: dict) -> dict:
    """``{key: (run folder, tag)}`` of the charted numbers of ``metrics.json``, less the
    validation figures fit already charts (loss, terms, accuracy): the last epoch
    validated on the same images, so its point at the last step is that figure."""
    places = {key: tensorboard_tags.final_place(key) for key in final_metrics(metrics)}
    return {key: (run, tag) for key, (run, tag) in places.items()
            if not (run == VALIDATION and tensorboard_tags.split(key)[1]
                    in fit_metrics.DESCRIPTIONS)}


def write_final_metrics(logdir: str, metrics: dict, step: int) -> None:
    """Each number of ``final_places`` into its run folder under ``logdir``, at
    optimizer step ``step`` (the HParams tab reads them as the run's results)."""
    scalars = {}
    for key, (run, tag) in final_places(metrics).items():
        if run not in scalars:
            scalars[run] = DescribedScalars(
                tf.summary.create_file_writer(os.path.join(logdir, run)))
        scalars[run].write(tag, key, metrics[key], step)
    for written in scalars.values():
        written.writer.close()


# Keras Tuner finds the TensorBoard callback of a search by its class name (and gives
# it one folder per trial), hence the name.
class TensorBoard(keras.callbacks.TensorBoard):
    """Keras' TensorBoard callback on the module's step axis, with descriptions.

    Epoch means go to ``train/`` and ``validation/``, tagged by ``tensorboard_tags``,
    at the optimizer step that ended the epoch; Keras' ``evaluation_*_vs_iterations``
    copies of the validation means are not written (they were the same numbers).
    The learning rate is written before every step, at the step count so far.
    The model's graph is written as Keras writes it.
    """

    def __init__(self, log_dir: str):
        super().__init__(log_dir, update_freq="epoch")
        self._scalars, self._log_learning_rate = {}, None

    def set_model(self, model):
        super().set_model(model)  # new writers (Keras Tuner sets each trial's log_dir)
        self._scalars, self._log_learning_rate = {}, None

    def _writer_of(self, run: str) -> DescribedScalars:
        if run not in self._scalars:
            writer = self._train_writer if run == TRAIN else self._val_writer
            self._scalars[run] = DescribedScalars(writer)
        return self._scalars[run]

    def _step(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    def on_train_batch_begin(self, batch, logs=None):
        super().on_train_batch_begin(batch, logs)
        if self._log_learning_rate is None:
            self._log_learning_rate = _learning_rate_logger(self.model.optimizer,
                                                            self._train_writer)
            self._log_learning_rate(True)  # with the description
        else:
            self._log_learning_rate(False)

    def on_test_begin(self, logs=None):
        pass  # Keras only routes batch-level summaries here; this callback writes none

    def on_test_end(self, logs=None):
        pass  # no evaluation_*_vs_iterations copies

    def on_epoch_end(self, epoch, logs=None):
        step = self._step()
        for key, value in (logs or {}).items():
            run, name = tensorboard_tags.split(key)
            self._writer_of(run).write(tensorboard_tags.tag(name), name, float(value), step)
        for scalars in self._scalars.values():
            scalars.writer.flush()


def _learning_rate_logger(optimizer, writer):
    """A function writing the learning rate at the optimizer's step count. Traced: the
    schedule and the summary run as one graph (about 0.5 ms a step on CPU; as eager
    ops, with the step count read back, 3.7 ms)."""
    optimizer = _inner(optimizer)

    @tf.function
    def log(described: bool):
        with writer.as_default():
            tf.summary.scalar(tensorboard_tags.tag(LEARNING_RATE), optimizer.learning_rate,
                              step=optimizer.iterations,
                              description=describe(LEARNING_RATE) if described else None)

    return log


def _inner(optimizer):
    """The optimizer a LossScaleOptimizer (mixed_float16) wraps, or ``optimizer``."""
    return getattr(optimizer, "inner_optimizer", optimizer)
