"""The live diagnostics: gradient ratios against an independent tape, map areas and
empty shares against NumPy, and a model left as it was."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from sfocus_tf import SFocusConfig, SFocusModel
from sfocus_tf.modeling import diagnostics
from sfocus_tf.modeling.gradcam import compute_attention
from tiny import tiny_backbone


def make_model(**config):
    model = SFocusModel(tiny_backbone(), 5, SFocusConfig(
        map_activation="softmax", map_temperature="spatial_std", **config))
    model.compile(optimizer="sgd")
    return model


def test_effective_area_matches_numpy(rng):
    maps = np.abs(rng.normal(size=(4, 5, 6)))
    maps[1] = 0.0
    maps[2] = 0.0
    maps[2, 3, 1] = 1.0  # a point
    expected = maps.sum((1, 2)) ** 2 / np.maximum((maps ** 2).sum((1, 2)), 1e-30) / 30
    got = diagnostics.effective_area(tf.constant(maps)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert got[1] == 0.0 and got[2] == pytest.approx(1 / 30)
    assert diagnostics.effective_area(tf.ones((1, 5, 6))).numpy()[0] == pytest.approx(1.0)


def test_gradient_ratios_equal_an_independent_tape_and_leave_the_model(rng):
    model = make_model(w_as_last=0.5, w_ac=2.0, w_as_in=0.0)
    images = tf.constant(rng.normal(size=(6, 12, 12, 3)), tf.float32)
    labels = tf.constant(rng.integers(0, 5, 6), tf.int32)
    before = [v.numpy() for v in model.non_trainable_variables]
    figures = diagnostics.diagnostics(model, images, labels, training=True)
    ratios = {name: value for name, value in figures.items() if name.startswith("grad_")}
    assert set(ratios) == {"grad_ratio_as_last", "grad_ratio_ac"}  # weighted terms only
    for variable, value in zip(model.non_trainable_variables, before):
        np.testing.assert_array_equal(variable.numpy(), value)
    variables = model.trainable_variables
    with tf.GradientTape(persistent=True) as tape:
        logits = model(images, training=True)
        ce = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
            labels, logits, from_logits=True))
        terms = model.objective(images, labels, training=True)
        weighted = {"as_last": 0.5 * terms["as_last"], "ac": 2.0 * terms["ac"]}
    for variable, value in zip(model.non_trainable_variables, before):
        variable.assign(value)

    def norm(target):
        return np.sqrt(sum(float(tf.reduce_sum(g ** 2))
                           for g in tape.gradient(target, variables) if g is not None))
    for name, term in weighted.items():
        expected = norm(term) / norm(ce)
        assert ratios[f"grad_ratio_{name}"] == pytest.approx(expected, rel=1e-4)


def test_inference_maps_are_read_with_the_statistics_before_the_gradient_pass(rng):
    model = make_model(w_as_last=1.0)
    images = tf.constant(rng.normal(size=(4, 12, 12, 3)), tf.float32)
    labels = tf.constant([0, 1, 2, 3])
    model(images, training=True)  # moving statistics away from their initial values
    expected = diagnostics.map_coverage(model, images, labels)
    figures = diagnostics.diagnostics(model, images, labels, training=False)
    assert figures["area_target_last"] == pytest.approx(float(expected["area_target_last"]))
    assert figures["grad_ratio_as_last"] > 0


def test_baseline_has_no_gradient_ratio_but_its_maps_are_measured(rng):
    model = make_model(w_as_last=0.0, w_as_in=0.0, w_ac=0.0)
    images = tf.constant(rng.normal(size=(4, 12, 12, 3)), tf.float32)
    labels = tf.constant([0, 1, 2, 3])
    figures = diagnostics.diagnostics(model, images, labels, training=False)
    assert not [name for name in figures if name.startswith("grad_ratio")]
    maps = compute_attention(model, images, labels)
    for name in ("target_last", "confusing_inner"):
        values = maps[name].numpy()
        area = values.sum((1, 2)) ** 2 / (values ** 2).sum((1, 2)) / values[0].size
        assert figures[f"area_{name}"] == pytest.approx(area.mean(), rel=1e-5)
        assert figures[f"empty_{name}"] == float((values.max((1, 2)) <= 0.5).mean())
