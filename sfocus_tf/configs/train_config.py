"""TrainConfig: everything one training run needs, resolved against a dataset preset."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping

import keras_models
from keras_models.applications import application_names
from sfocus_tf import data
from sfocus_tf.configs.schedules import dataset_schedule
from sfocus_tf.modeling import terms
from sfocus_tf.modeling.sfocus_config import FIELDS_ADDED_SINCE, SFocusConfig
from sfocus_tf.common.config_flags import choices_of, option

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "multistep", "constant")
MIXED_PRECISION = ("none", "mixed_float16", "mixed_bfloat16")
# tf.distribute strategies by name (sfocus_tf.training.distribute makes them).
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")
# The fields of --model=application, given to keras_models.get.
APPLICATION_FIELDS = ("application", "inner_layer", "last_layer", "weights")
# Other fields given to keras_models.get where set.
BACKBONE_FIELDS = ("class_block_width",)
# Fields that may change when a run is restarted: they say how and where it runs and
# what it writes besides the model, not what it trains. strategy and jit_compile
# already follow the machine when left at "auto", so an explicit change is no worse;
# backup_every_steps and attention_images change only the backups and overlays.
OPERATIONAL_FIELDS = ("strategy", "jit_compile", "backup_every_steps", "attention_images")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training run. ``None`` schedule fields take the dataset's default
    (``schedules.DATASET_SCHEDULES``) in ``resolve()``; explicit values win. Each
    field is a flag of the training commands (``config_flags``)."""

    dataset: str = option("fashion_mnist", "Dataset preset.", choices=data.names)
    model: str = option("resnet20", "Backbone.", choices=keras_models.names)
    # --model=application: any keras.applications model, cut at two of its layers.
    application: str | None = option(
        None, "--model=application: the keras.applications model, e.g. ResNet50.",
        choices=application_names)
    inner_layer: str | None = option(
        None, "--model=application: the layer whose output is the inner feature map.")
    last_layer: str | None = option(
        None, "--model=application: the layer whose output is the last feature map; "
        "default: the application's output.")
    weights: str | None = option(
        None, "--model=application: initial weights, 'imagenet' (downloaded once into "
        "the Keras cache) or a local .weights.h5 file of the same application without "
        "its top; default: random.")
    class_block_width: int | None = option(
        None, "ResNets: replace the last stage by one stage of this width per class (the "
        "++ variant; see --w_bw); default: the plain last stage.")
    data_dir: str | None = option(
        None, "Data directory (tfds data dir, image folder, Fashion-MNIST .gz folder).")
    image_size: int | None = option(None, "Square image size; default: the dataset's.")
    epochs: int | None = option(None, "Training epochs; default: the dataset's.")
    steps_per_epoch: int | None = option(
        None, "Steps per epoch; default: one pass over the training set.")
    eval_steps: int | None = option(None, "Evaluation batches; default: the whole test set.")
    batch_size: int | None = option(None, "Global batch size; default: the dataset's.")
    learning_rate: float | None = option(None, "Peak learning rate; default: the dataset's.",
                                         flag="lr")
    schedule: str | None = option(None, "Learning-rate schedule; default: the dataset's.",
                                  choices=SCHEDULES)
    milestones: tuple[int, ...] | None = option(
        None, "Epochs at which the multistep schedule divides the learning rate by 10; "
        "default: the dataset's.")
    warmup_epochs: float = option(0.0, "Linear learning-rate warm-up (cosine schedule).")
    weight_decay: float | None = option(None, "Weight decay; default: the dataset's.")
    optimizer: str = option("sgd", "Optimizer (SGD: Nesterov momentum; SGD and Adam take "
                            "weight decay as L2 terms, AdamW its own).", choices=OPTIMIZERS)
    momentum: float = option(0.9, "SGD momentum.")
    sfocus: SFocusConfig = SFocusConfig()
    seed: int = option(0, "Random seed (weights, shuffling, augmentation).")
    jit_compile: Any = option("auto", "XLA for the training step; auto: on with a GPU, "
                              "off on CPU.", choices=("auto", True, False))
    mixed_precision: str = option("none", "Keras dtype policy.", choices=MIXED_PRECISION)
    strategy: str = option("auto", "tf.distribute strategy.", choices=STRATEGIES)
    backup_every_steps: int = option(200, "Optimizer steps between resumable backups.")
    attention_images: int = option(8, "Test examples in the per-epoch overlay grid.")
    train_examples: int | None = option(
        None, "Train on a class-balanced subset of the 'train' split: this many images, "
        "N // classes of each class, the same ones in every run (validation and test "
        "unchanged); default: all of it.")
    full_training_set: bool = option(
        False, "Train on the whole training split, its held-out validation images "
        "included (for final numbers once every choice is made): no validation during "
        "training.")
    skip_bad_images: bool = option(False, "Image folders: leave out (and count) files "
                                   "that do not decode, instead of failing before training.")

    def __post_init__(self):
        for field in dataclasses.fields(self):
            allowed, value = choices_of(field), getattr(self, field.name)
            if allowed is not None and value is not None:
                _check_choice(field.name, value, allowed)
        for name in ("epochs", "steps_per_epoch", "eval_steps", "batch_size", "image_size",
                     "class_block_width", "train_examples"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        for name in ("learning_rate", "weight_decay", "backup_every_steps"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0; got {value!r}")
        if self.train_examples is not None and self.full_training_set:
            raise ValueError("train_examples subsets the 'train' split; full_training_set "
                             "trains on all of the training split: set one of them")
        if self.milestones is not None:
            object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))
        self._check_application()

    def _check_application(self):
        given = [name for name in APPLICATION_FIELDS if getattr(self, name) is not None]
        if self.model != "application" and given:
            raise ValueError(f"{', '.join(given)} need model=application; got model="
                             f"{self.model!r}")
        if self.model == "application" and (self.application is None
                                            or self.inner_layer is None):
            raise ValueError("model=application needs application (a keras.applications "
                             "name) and inner_layer")

    def backbone_options(self) -> dict:
        """The keyword arguments of ``keras_models.get`` that this config sets."""
        return {name: getattr(self, name) for name in APPLICATION_FIELDS + BACKBONE_FIELDS
                if getattr(self, name) is not None}

    def preset(self) -> data.DatasetPreset:
        """The dataset preset this config trains on. A run looks it up once, here,
        and passes it on (an image folder's classes are read from disk)."""
        return data.get_preset(self.dataset, image_size=self.image_size,
                               data_dir=self.data_dir)

    def resolve(self, preset: data.DatasetPreset | None = None) -> "TrainConfig":
        """The config with the dataset's schedule in every field left at None, and
        the dataset's kind of labels; ``preset``: ``self.preset()`` if the caller
        has it already."""
        preset = self.preset() if preset is None else preset
        values = {name: value for name, value in dataset_schedule(self.dataset).items()
                  if getattr(self, name) is None}
        sfocus = self.sfocus
        if preset.multi_label != sfocus.multi_label:
            sfocus = sfocus.replace(multi_label=preset.multi_label)
        return dataclasses.replace(self, sfocus=sfocus, **values)

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["sfocus"] = self.sfocus.to_dict()
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], saved: bool = False) -> "TrainConfig":
        """``saved``: ``values`` come from a run's config.json (``SFocusConfig.from_saved``)."""
        values = dict(values)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown TrainConfig field(s) {unknown}; valid: {sorted(known)}")
        if isinstance(values.get("sfocus"), Mapping):
            load = SFocusConfig.from_saved if saved else SFocusConfig.from_dict
            values["sfocus"] = load(values["sfocus"])
        return cls(**values)


# Fields added after runs were written whose value here does what a run from before
# them did. Not every default qualifies: ``map_activation``'s default changed the
# method, so its absence in an old config.json is a change.
ADDED_FIELDS_OFF = {"skip_bad_images": False,
                    **{f"sfocus.{name}": value for name, value in FIELDS_ADDED_SINCE.items()}}


def config_changes(stored: Mapping[str, Any], config: TrainConfig) -> list[str]:
    """``"name old -> new"`` for each field where ``config`` differs from ``stored`` (a
    ``config.json``), nested fields as ``sfocus.name``, values as JSON; the
    OPERATIONAL_FIELDS are not compared, nor fields added since ``stored`` was
    written that are left unset (None) or, for loss weights, at 0 (an older version
    could only mean that)."""
    missing = "(absent)"
    old = _flatten(stored)
    new = _flatten(json.loads(json.dumps(config.to_dict())))  # tuples as JSON lists
    # An added field left at None, an added loss weight at 0 (a term an older
    # version did not have), or an added switch at the value that reproduces the
    # older behaviour (ADDED_FIELDS_OFF) means what its absence meant.
    weights = {f"sfocus.{field}" for field in terms.WEIGHT_FIELDS}
    added_unset = {name for name, value in new.items() if name not in old
                   and (value is None or (name in weights and value == 0.0)
                        or (name in ADDED_FIELDS_OFF and value == ADDED_FIELDS_OFF[name]))}
    names = sorted((set(old) | set(new)) - set(OPERATIONAL_FIELDS) - added_unset)
    return [f"{name} {json.dumps(old[name]) if name in old else missing} -> "
            f"{json.dumps(new[name]) if name in new else missing}"
            for name in names if old.get(name, missing) != new.get(name, missing)]


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict:
    flat = {}
    for name, value in values.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def _check_choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(map(str, allowed))}")
