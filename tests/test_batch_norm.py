import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_models import Backbone, BatchNorm, exact_batch_norm
from sfocus_tf import SFocusConfig, SFocusModel
from tiny import tiny_backbone


def gradient_objective(layer, x, w, v):
    """<v, d/dx sum(softplus(BN(x)) * w)>: a function of a gradient through BN, like
    a Grad-CAM weight; differentiating it needs BN's second derivatives."""
    with tf.GradientTape() as inner:
        inner.watch(x)
        y = tf.reduce_sum(tf.nn.softplus(layer(x, training=True)) * w)
    return tf.reduce_sum(inner.gradient(y, x) * v)


def second_order_check(layer, rng):
    x = tf.constant(rng.normal(size=(6, 3, 3, 2)))
    w, v = (tf.constant(rng.normal(size=(6, 3, 3, 2))) for _ in range(2))
    with tf.GradientTape() as outer:
        outer.watch(x)
        value = gradient_objective(layer, x, w, v)
    direction = rng.normal(size=x.shape)
    analytic = np.sum(outer.gradient(value, x).numpy() * direction)
    h = 1e-6
    numeric = (gradient_objective(layer, x + h * direction, w, v)
               - gradient_objective(layer, x - h * direction, w, v)).numpy() / (2 * h)
    return analytic, numeric


def test_batch_norm_forward_equals_keras(rng):
    x = rng.normal(size=(8, 4, 4, 3)).astype("float32")
    ours, stock = BatchNorm(momentum=0.9), keras.layers.BatchNormalization(momentum=0.9)
    for layer in (ours, stock):
        layer.build(x.shape)
    for training in (True, False):
        np.testing.assert_allclose(ours(x, training=training), stock(x, training=training),
                                   rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.moving_variance, stock.moving_variance, rtol=1e-6)


def test_batch_norm_second_derivatives_are_exact_and_keras_are_not(rng):
    keras.config.set_floatx("float64")
    analytic, numeric = second_order_check(BatchNorm(), rng)
    assert analytic == pytest.approx(numeric, rel=1e-6)
    # Pins the TF/Keras trap this layer exists for: if it ever starts to pass,
    # BatchNorm can go.
    analytic, numeric = second_order_check(keras.layers.BatchNormalization(), rng)
    assert abs(analytic - numeric) > 1e-2 * abs(numeric)


def test_exact_batch_norm_clone_keeps_weights_and_outputs(rng):
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(3, 3)(inputs)
    outputs = keras.layers.BatchNormalization(name="bn")(x)
    model = keras.Model(inputs, outputs)
    model.get_layer("bn").set_weights([rng.random(3) + 0.5 for _ in range(4)])
    clone = exact_batch_norm(model)
    assert type(clone.get_layer("bn")) is BatchNorm
    images = rng.normal(size=(2, 6, 6, 2)).astype("float32")
    np.testing.assert_allclose(clone(images), model(images), rtol=1e-6)


def test_model_warns_about_stock_batch_norm():
    inputs = keras.Input((8, 8, 1))
    inner = keras.layers.BatchNormalization(name="stock_bn")(keras.layers.Conv2D(2, 3)(inputs))
    last = keras.layers.Conv2D(2, 3)(inner)
    with pytest.warns(UserWarning, match="stock_bn.*exact_batch_norm"):
        SFocusModel(Backbone(inputs, inner, last), 3, SFocusConfig(second_order=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SFocusModel(tiny_backbone(), 3)  # BatchNorm everywhere: no warning
