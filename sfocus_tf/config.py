"""Every switch and constant of the SFOCUS objective (docs/method.md)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import tensorflow as tf

from sfocus_tf import terms

# Allowed values of the categorical switches; the first one is the default.
CHOICES = {
    "gradcam_weights": ("mean", "relu_mean"),
    "normalize": ("max", "minmax", "none"),
    "as_layers": ("both", "last"),
    "ac_mask_source": ("last", "inner"),
    "class_score": ("logit", "log_prob", "logit_difference"),
    "map_activation": ("softmax", "relu", "abs"),
}
_BOOLEANS = ("second_order", "mask_gradient", "ac_clamp", "multi_label",
             "decouple_batch_norm")
_WEIGHTS = terms.WEIGHT_FIELDS
_STEPS = ("warmup_steps", "ramp_steps")
# Standard Grad-CAM: the values of the fields that define what a map is. Evaluation
# measures every model with it, so that no training reading can improve its scores by
# redefining the map.
GRADCAM_READING = {"class_score": "logit", "gradcam_weights": "mean",
                   "map_activation": "relu", "normalize": "max"}


@dataclasses.dataclass(frozen=True)
class SFocusConfig:
    """Constants and ablation switches of the SFOCUS objective.

    Loss: ``CE + w_as_last * L_AS_last + w_as_in * L_AS_in + w_ac * L_AC``.
    All three weights at 0 is the plain baseline: no attention is computed.
    """

    sigma: float = 0.55  # soft-mask threshold on the normalised target map
    omega: float = 100.0  # soft-mask steepness
    theta: float = 0.8  # consistency target
    w_as_last: float = 1.0
    w_as_in: float = 1.0
    w_ac: float = 1.0
    gradcam_weights: str = "mean"
    second_order: bool = True
    normalize: str = "max"
    mask_gradient: bool = False
    as_layers: str = "both"
    ac_mask_source: str = "last"
    ac_clamp: bool = False
    multi_label: bool = False
    # Grad-CAM gradients taken with the last stage's BatchNorm batch statistics held
    # constant: each example's map then depends on that example only (the public
    # implementations keep the coupling). Needs keras_models.BatchNorm.
    decouple_batch_norm: bool = False
    # Which score's gradient Grad-CAM takes: the logit shifts with anything common to
    # all logits (which the softmax ignores); the log-probability and the margin
    # over the other class (target - confusing) do not.
    class_score: str = "logit"
    # relu keeps positive evidence only, so a map can be switched off everywhere, and
    # with the other defaults it is (docs/ablation.md); abs and a softmax over
    # positions cannot be. softmax: the study's most accurate reading that keeps its
    # maps and separates them.
    map_activation: str = "softmax"
    # Attention weights are 0 for the first warmup_steps optimizer steps, then grow
    # linearly to full over ramp_steps (read from the optimizer's step counter, so
    # the schedule survives save/load and resume).
    warmup_steps: int = 0
    ramp_steps: int = 0

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
    def from_dict(cls, values: Mapping[str, Any]) -> "SFocusConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown SFocusConfig field(s) {unknown}; valid fields: "
                             + ", ".join(sorted(known)))
        return cls(**dict(values))
