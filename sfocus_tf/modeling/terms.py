"""The terms of the SFOCUS objective (docs/method.md), in one table.

    L = CE + w_bw L_BW + s(t) (w_as_last L_AS_last + w_as_in L_AS_in + w_ac L_AC)
        + model.losses

Each row names a term as the model logs it, the ``SFocusConfig`` field that weights
it (None: weight 1), the attention maps it needs, whether it needs a backbone with
per-class last blocks (``keras_models.class_blocks``) and what it measures. The model
(which maps to compute, which terms to add), its metrics, the non-finite check and
the tuner's search space are all read from this table.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Term:
    name: str
    weight: str | None  # the SFocusConfig field; None for a term of weight 1
    # Names of attention maps (attention.MAP_NAMES); "{field}" is the value of that
    # SFocusConfig field, e.g. the layer the consistency mask comes from.
    maps: tuple[str, ...]
    description: str
    class_blocks: bool = False  # needs a backbone built with class_block_width

    def maps_for(self, config) -> tuple[str, ...]:
        """The maps this term needs under ``config``."""
        return tuple(name.format(**config.to_dict()) for name in self.maps)


TERMS = (
    Term("ce", None, (), "cross-entropy of the logits (sigmoid for multi-label data)"),
    Term("as_last", "w_as_last", ("target_last", "confusing_last"),
         "separability at the last layer: target and confusing maps under the target's mask"),
    Term("as_inner", "w_as_in", ("target_inner", "confusing_inner"),
         "separability at the inner layer (dropped by as_layers='last')"),
    Term("ac", "w_ac", ("target_inner", "target_{ac_mask_source}"),
         "consistency: theta minus the inner target map's share inside the mask"),
    Term("bw", "w_bw", (), "black-white (the ++ variant; needs --class_block_width): exp of "
         "the mean activation of "
         "the other classes' blocks minus the true class's", class_blocks=True),
)
NAMES = tuple(term.name for term in TERMS)
# The terms computed on attention maps, which the warm-up scales.
ATTENTION_TERMS = tuple(term for term in TERMS if term.maps)
# The other weighted terms, added at full weight from the first step.
FEATURE_TERMS = tuple(term for term in TERMS if term.weight and not term.maps)
WEIGHT_FIELDS = tuple(term.weight for term in TERMS if term.weight)

