"""Every switch and constant of the SFOCUS objective (docs/method.md)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import tensorflow as tf

from sfocus_tf.modeling import terms
from sfocus_tf.common.config_flags import choices_of, option

_WEIGHTS = terms.WEIGHT_FIELDS
_STEPS = ("warmup_steps", "ramp_steps")
# Standard Grad-CAM: the values of the fields that define what a map is. Evaluation
# measures every model with it, so that no training reading can improve its scores by
# redefining the map.
GRADCAM_READING = {"class_score": "logit", "gradcam_weights": "mean",
                   "map_activation": "relu", "normalize": "max"}


def _weight_option(field: str, default: float):
    """The field weighting a term of the objective; its help text is the term's own
    description in ``terms.TERMS``, the one place each term is described."""
    term = next(term for term in terms.TERMS if term.weight == field)
    return option(default, f"Weight of the {term.name} term, {term.description}.")


@dataclasses.dataclass(frozen=True)
class SFocusConfig:
    """Constants and ablation switches of the SFOCUS objective.

    Loss: ``CE + w_bw * L_BW + w_as_last * L_AS_last + w_as_in * L_AS_in + w_ac * L_AC``.
    Every weight at 0 is the plain baseline: no attention is computed.
    """

    sigma: float = option(0.55, "Soft-mask threshold on the normalised target map.")
    omega: float = option(100.0, "Soft-mask steepness.")
    theta: float = option(0.8, "Consistency target.")
    w_as_last: float = _weight_option("w_as_last", 1.0)
    w_as_in: float = _weight_option("w_as_in", 1.0)
    w_ac: float = _weight_option("w_ac", 1.0)
    w_bw: float = _weight_option("w_bw", 0.0)
    # The default reading (relu maps, positive-gradient weights held constant: what the
    # public re-implementations do) is the one the validation study chose among those
    # whose separability acts and whose maps cover regions (docs/default_study.md).
    gradcam_weights: str = option("relu_mean", "Grad-CAM channel weights: the mean "
                                  "gradient, or the mean of its positive part.",
                                  choices=("mean", "relu_mean"))
    second_order: bool = option(False, "Differentiate through the Grad-CAM weights (else "
                                "they are held constant).")
    normalize: str = option("max", "How a map is scaled to [0, 1].",
                            choices=("max", "minmax", "none"))
    mask_gradient: bool = option(False, "Let the gradient flow through the soft mask.")
    as_layers: str = option("both", "Layers with a separability term.",
                            choices=("both", "last"))
    ac_mask_source: str = option("last", "Layer whose target map gives the consistency "
                                 "mask.", choices=("last", "inner"))
    ac_clamp: bool = option(False, "Clamp the consistency loss at 0 once theta is reached.")
    # Set from the dataset by TrainConfig.resolve(): not a flag.
    multi_label: bool = option(False, "Sigmoid labels (several classes per image).",
                               derived=True)
    # Grad-CAM gradients taken with the last stage's BatchNorm batch statistics held
    # constant: each example's map then depends on that example only (the public
    # implementations keep the coupling). Needs keras_models.BatchNorm.
    decouple_batch_norm: bool = option(
        False, "Grad-CAM with the last stage's BatchNorm batch statistics held constant, "
        "so that each example's map depends on that example only.")
    # The logit shifts with anything common to all logits (which the softmax
    # ignores); the log-probability and the margin over the other class do not.
    class_score: str = option("logit", "Score whose gradient Grad-CAM takes.",
                              choices=("logit", "log_prob", "logit_difference"))
    # relu keeps positive evidence only, so a map can be switched off everywhere (the
    # cheapest way to meet separability); abs and a softmax over positions cannot be.
    map_activation: str = option("relu", "Activation of the weighted sum of feature "
                                 "maps (softmax: over positions).",
                                 choices=("softmax", "relu", "abs"))
    # At temperature "logit" the softmax reads the per-position score in logits, whose
    # spread grows as the network trains, until the map is one position; "spatial_std"
    # divides the score by its own spatial standard deviation (held constant), so the
    # share of positions a map covers does not depend on the logit scale.
    map_temperature: str = option("logit", "Temperature of the softmax map activation: "
                                  "one logit, or the score's spatial standard deviation "
                                  "(scale-free).", choices=("logit", "spatial_std"))
    # "resized_mask" upsamples the last layer's soft mask, which lowers its peak (a one-
    # position 7x7 mask peaks at 0.5625 on a 14x14 map, more on the border), so theta can
    # be out of reach; "resized_map" upsamples the last-layer map, renormalises it and
    # takes the soft mask at the inner layer's size, whose peak is 1 anywhere.
    ac_mask: str = option("resized_mask", "How the consistency mask reaches the inner "
                          "layer's size: the last layer's mask upsampled, or the soft mask "
                          "of the upsampled, renormalised last-layer map.",
                          choices=("resized_mask", "resized_map"))
    # Read from the optimizer's step counter, so the schedule survives save/load and
    # resume.
    warmup_steps: int = option(0, "Optimizer steps with every attention weight at 0.")
    ramp_steps: int = option(0, "Optimizer steps over which the attention weights then "
                             "grow linearly to full.")

    def __post_init__(self):
        for name, allowed in CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(
                    f"SFocusConfig.{name}={value!r} is not valid; allowed values: "
                    + ", ".join(repr(a) for a in allowed))
        for name in _BOOLEANS:
            if not isinstance(getattr(self, name), bool):
                raise ValueError(
                    f"SFocusConfig.{name}={getattr(self, name)!r} is not valid; "
                    "allowed values: True, False")
        for name in _WEIGHTS + ("sigma", "omega", "theta"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise ValueError(
                    f"SFocusConfig.{name}={value!r} is not valid; "
                    "it must be a finite number")
            object.__setattr__(self, name, float(value))
        for name in _WEIGHTS:
            if getattr(self, name) < 0:
                raise ValueError(f"SFocusConfig.{name}={getattr(self, name)} is not "
                                 "valid; loss weights must be >= 0")
        for name in _STEPS:
            value = getattr(self, name)
            if isinstance(value, float) and value.is_integer():
                value = int(value)  # from float flags or JSON
                object.__setattr__(self, name, value)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"SFocusConfig.{name}={value!r} is not valid; it "
                                 "must be an integer >= 0 (optimizer steps)")
        if not 0.0 <= self.sigma <= 1.0:
            raise ValueError(f"SFocusConfig.sigma={self.sigma} is not valid; it "
                             "must be in [0, 1] (a level on the normalised map)")
        if self.omega <= 0:
            raise ValueError(f"SFocusConfig.omega={self.omega} is not valid; it "
                             "must be > 0")

    # -- which parts of the objective are switched on ------------------------

    @property
    def term_weights(self) -> dict[str, float]:
        """The weight of each term of the objective (``as_layers="last"`` drops the
        inner separability term); training computes only the terms weighted > 0."""
        weights = {term.name: getattr(self, term.weight) if term.weight else 1.0
                   for term in terms.TERMS}
        if self.as_layers == "last":
            weights["as_inner"] = 0.0
        return weights

    @property
    def uses_attention(self) -> bool:
        """False for the baseline: the step is then a plain Keras step."""
        weights = self.term_weights
        return any(weights[term.name] > 0 for term in terms.ATTENTION_TERMS)

    def attention_scale(self, step):
        """Factor on every attention weight at optimizer step ``step`` (0-based):
        0 during the warm-up, then a linear ramp to 1."""
        step = tf.cast(step, tf.float32)
        after_warmup = step - float(self.warmup_steps)
        if self.ramp_steps == 0:
            return tf.cast(after_warmup >= 0.0, tf.float32)
        return tf.clip_by_value((after_warmup + 1.0) / float(self.ramp_steps), 0.0, 1.0)

    def baseline(self) -> "SFocusConfig":
        """The same configuration with every attention weight at 0."""
        return self.replace(**{field: 0.0 for field in terms.WEIGHT_FIELDS})

    # -- serialisation -------------------------------------------------------

    def replace(self, **changes) -> "SFocusConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_saved(cls, values: Mapping[str, Any]) -> "SFocusConfig":
        """The config of a saved model or run (model.keras, config.json): a field added
        after it was written takes the value that does what the file meant then
        (``FIELDS_ADDED_SINCE``), not today's default."""
        return cls.from_dict({**FIELDS_ADDED_SINCE, **values})

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "SFocusConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown SFocusConfig field(s) {unknown}; valid fields: "
                             + ", ".join(sorted(known)))
        return cls(**dict(values))


# Fields added after models and runs were saved, at the value that reproduces what a
# file written before them computed.
FIELDS_ADDED_SINCE = {"map_temperature": "logit", "ac_mask": "resized_mask"}

# Allowed values of the categorical switches, and the switches, from the fields.
CHOICES = {field.name: choices_of(field) for field in dataclasses.fields(SFocusConfig)
           if choices_of(field) is not None}
_BOOLEANS = tuple(field.name for field in dataclasses.fields(SFocusConfig)
                  if field.type == "bool")
