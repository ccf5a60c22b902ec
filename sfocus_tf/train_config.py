"""TrainConfig: everything one training run needs, resolved against a dataset preset."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping

import keras_models
from sfocus_tf import data
from sfocus_tf.config import SFocusConfig
from sfocus_tf.distribute import STRATEGIES

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "multistep", "constant")
MIXED_PRECISION = ("none", "mixed_float16", "mixed_bfloat16")
# Fields that may change when a run is restarted: they say how and where it runs and
# what it writes besides the model, not what it trains. strategy and jit_compile
# already follow the machine when left at "auto", so an explicit change is no worse;
# backup_every_steps and attention_images change only the backups and overlays.
OPERATIONAL_FIELDS = ("strategy", "jit_compile", "backup_every_steps", "attention_images")
# Fields that fall back to the dataset preset when left at None.
PRESET_FIELDS = ("batch_size", "epochs", "schedule", "milestones", "learning_rate",
                 "weight_decay")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training run. ``None`` fields take the dataset preset's value in
    ``resolve()``; explicit values win."""

    dataset: str = "fashion_mnist"
    model: str = "resnet20"
    data_dir: str | None = None
    image_size: int | None = None
    epochs: int | None = None
    steps_per_epoch: int | None = None  # None = one pass over the training set
    eval_steps: int | None = None  # None = the whole test set
    batch_size: int | None = None
    learning_rate: float | None = None
    schedule: str | None = None
    milestones: tuple[int, ...] | None = None  # epochs at which multistep divides lr by 10
    warmup_epochs: float = 0.0
    weight_decay: float | None = None
    optimizer: str = "sgd"
    momentum: float = 0.9
    sfocus: SFocusConfig = SFocusConfig()
    seed: int = 0
    jit_compile: Any = "auto"
    mixed_precision: str = "none"
    strategy: str = "auto"
    backup_every_steps: int = 200
    attention_images: int = 8  # examples in the per-epoch overlay grid
    skip_bad_images: bool = False  # image folders: leave out files that do not decode

    def __post_init__(self):
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("mixed_precision", self.mixed_precision, MIXED_PRECISION)
        _check_choice("strategy", self.strategy, STRATEGIES)
        _check_choice("dataset", self.dataset, data.names())
        _check_choice("model", self.model, keras_models.names())
        if self.schedule is not None:
            _check_choice("schedule", self.schedule, SCHEDULES)
        for name in ("epochs", "steps_per_epoch", "eval_steps", "batch_size", "image_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        for name in ("learning_rate", "weight_decay", "backup_every_steps"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0; got {value!r}")
        if self.jit_compile not in ("auto", True, False):
            raise ValueError(f"jit_compile must be 'auto', True or False; "
                             f"got {self.jit_compile!r}")
        if self.milestones is not None:
            object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))

    def preset(self):
        """The dataset preset this config trains on (``data.DatasetPreset``)."""
        return data.get_preset(self.dataset, image_size=self.image_size,
                               data_dir=self.data_dir)

    def resolve(self) -> "TrainConfig":
        """The config with every preset-backed field filled in."""
        preset = self.preset()
        values = {name: getattr(preset, name) for name in PRESET_FIELDS
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
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainConfig":
        values = dict(values)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown TrainConfig field(s) {unknown}; valid: {sorted(known)}")
        if isinstance(values.get("sfocus"), Mapping):
            values["sfocus"] = SFocusConfig.from_dict(values["sfocus"])
        return cls(**values)


def config_to_flags(config: TrainConfig) -> list[str]:
    """The ``sfocus-train`` flag lines that reproduce ``config`` (a resolved TrainConfig)."""
    values = {"dataset": config.dataset, "model": config.model, "data_dir": config.data_dir,
              "image_size": config.image_size, "epochs": config.epochs,
              "steps_per_epoch": config.steps_per_epoch, "eval_steps": config.eval_steps,
              "batch_size": config.batch_size, "lr": config.learning_rate,
              "schedule": config.schedule, "warmup_epochs": config.warmup_epochs,
              "weight_decay": config.weight_decay, "optimizer": config.optimizer,
              "momentum": config.momentum, "seed": config.seed,
              "jit_compile": str(config.jit_compile).lower(),
              "mixed_precision": config.mixed_precision, "strategy": config.strategy,
              "backup_every_steps": config.backup_every_steps,
              "skip_bad_images": config.skip_bad_images,
              **config.sfocus.to_dict()}
    if config.milestones:
        values["milestones"] = ",".join(map(str, config.milestones))
    lines = []
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            lines.append(f"--{name}" if value else f"--no{name}")
        else:
            lines.append(f"--{name}={value!r}" if isinstance(value, float) else f"--{name}={value}")
    return lines


def config_changes(stored: Mapping[str, Any], config: TrainConfig) -> list[str]:
    """``"name old -> new"`` for each field where ``config`` differs from ``stored`` (a
    ``config.json``), nested fields as ``sfocus.name``, values as JSON; the
    OPERATIONAL_FIELDS are not compared."""
    old = _flatten(stored)
    new = _flatten(json.loads(json.dumps(config.to_dict())))  # tuples as JSON lists
    names = sorted((set(old) | set(new)) - set(OPERATIONAL_FIELDS))
    missing = "(absent)"
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
