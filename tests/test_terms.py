"""The table of loss terms drives the model, its metrics, the non-finite check and
the tuner."""

import numpy as np
import pytest

import keras_models
from sfocus_tf import SFocusConfig, SFocusModel
from sfocus_tf.training import finite
from sfocus_tf.modeling import fit_metrics, terms
from sfocus_tf.studies import tuning
from sfocus_tf.configs.train_config import TrainConfig
from tiny import tiny_backbone


def batch(rng, n=4):
    return (rng.normal(size=(n, 12, 12, 3)).astype("float32"),
            rng.integers(0, 5, size=n).astype("int32"))


def test_every_term_is_logged_checked_and_weighted_by_a_config_field():
    for term in terms.TERMS:
        assert term.name in fit_metrics.LOSS_METRICS and term.name in finite.TERMS
        assert term.name in SFocusConfig().term_weights
        if term.weight:
            assert hasattr(SFocusConfig(), term.weight)
            assert term.weight in tuning.SFOCUS_PARAMETERS
            assert term.weight in tuning.DEFAULT_RANGES
            assert SFocusConfig().baseline().term_weights[term.name] == 0.0


@pytest.mark.parametrize("term", terms.ATTENTION_TERMS, ids=lambda term: term.name)
def test_training_computes_a_term_from_its_own_maps_alone(rng, term):
    """With only ``term`` weighted, training computes its maps and no other term."""
    config = SFocusConfig().replace(**{field: 0.0 for field in terms.WEIGHT_FIELDS})
    config = config.replace(**{term.weight: 0.5, "ac_mask_source": "inner"})
    model = SFocusModel(tiny_backbone(), 5, config)
    assert model._maps_needed(training=True) == tuple(dict.fromkeys(term.maps_for(config)))
    values = model.objective(*batch(rng), training=True)
    assert set(values) & set(terms.NAMES) == {"ce", term.name}
    np.testing.assert_allclose(values["loss"], values["ce"] + 0.5 * values[term.name],
                               rtol=1e-6)


def test_evaluation_reports_every_term_and_weights_it_as_the_config_says(rng):
    config = SFocusConfig(w_as_last=0.3, w_as_in=0.7, w_ac=1.5)
    values = SFocusModel(tiny_backbone(), 5, config).objective(*batch(rng))
    assert set(values) & set(terms.NAMES) == {
        term.name for term in terms.TERMS if not term.class_blocks}  # no blocks: no bw
    expected = sum(weight * values[name] for name, weight in config.term_weights.items()
                   if name in values)
    np.testing.assert_allclose(values["loss"], expected, rtol=1e-6)


def plusplus_model(config):
    backbone = keras_models.get("resnet8", (12, 12, 3), 5, class_block_width=2)
    return SFocusModel(backbone, 5, config)


def test_black_white_term_is_added_at_full_weight_from_the_first_step(rng):
    """L_BW is no attention term: no maps are computed for it and the attention
    warm-up (here: the whole run) does not scale it."""
    config = SFocusConfig().baseline().replace(w_bw=0.5, w_ac=1.0, warmup_steps=100)
    model = plusplus_model(config)
    model.compile(optimizer="sgd")
    values = model.objective(*batch(rng), training=True)
    assert set(values) & set(terms.NAMES) == {"ce", "bw", "ac"}
    np.testing.assert_allclose(values["loss"], values["ce"] + 0.5 * values["bw"], rtol=1e-6)
    only_bw = plusplus_model(config.replace(w_ac=0.0))
    assert only_bw._maps_needed(training=True) == ()
    values = only_bw.objective(*batch(rng))  # evaluation: every term, bw included
    assert set(terms.NAMES) <= set(values)


def test_tuner_searches_w_bw_only_with_class_blocks():
    space = tuning.SearchSpace()
    plain = dict(space.for_config(TrainConfig()).ranges)
    assert "w_bw" not in plain and "w_ac" in plain
    assert "w_bw" in dict(space.for_config(TrainConfig(class_block_width=4)).ranges)


def test_maps_of_a_term_follow_the_config():
    consistency = next(term for term in terms.TERMS if term.name == "ac")
    assert consistency.maps_for(SFocusConfig()) == ("target_inner", "target_last")
    assert consistency.maps_for(SFocusConfig(ac_mask_source="inner")) == (
        "target_inner", "target_inner")
