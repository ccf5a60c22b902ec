import keras
import numpy as np
import pytest
import tensorflow as tf

import sfocus_tf.modeling.sfocus_model
from sfocus_tf import SFocusConfig, SFocusModel
from tiny import tiny_backbone

SHAPE = (12, 12, 3)


def batch(rng, n=8, num_classes=5, dtype="float32"):
    return (rng.normal(size=(n,) + SHAPE).astype(dtype),
            rng.integers(0, num_classes, size=n).astype("int32"))


def gradients(model, images, labels):
    with tf.GradientTape() as tape:
        terms = model.objective(images, labels, training=True)
    return terms, tape.gradient(terms["loss"], model.trainable_variables)


def copy_weights(source, target):
    target.set_weights(source.get_weights())
    return target


def test_second_order_changes_the_weight_gradients(rng):
    images, labels = batch(rng)
    first = SFocusModel(tiny_backbone(), 5, SFocusConfig(second_order=True))
    second = copy_weights(first, SFocusModel(tiny_backbone(), 5, SFocusConfig(second_order=False)))
    terms_a, grads_a = gradients(first, images, labels)
    terms_b, grads_b = gradients(second, images, labels)
    np.testing.assert_allclose(terms_a["loss"], terms_b["loss"], rtol=1e-6)  # same value
    differences = [np.abs(a - b).max() for a, b in zip(grads_a, grads_b)]
    assert max(differences) > 1e-4, differences


@pytest.mark.parametrize("decouple", [False, True])
def test_second_order_gradient_matches_finite_differences(rng, decouple):
    """The whole objective in float64 (BatchNorm in training mode included): the
    gradient along a random direction in each variable equals a central difference.
    mask_gradient=True, so nothing is held constant; a smooth activation, so no
    relu kink lies within the step."""
    keras.config.set_floatx("float64")
    config = SFocusConfig(second_order=True, mask_gradient=True, omega=10.0,
                          decouple_batch_norm=decouple)
    backbone = tiny_backbone(SHAPE, dtype="float64", activation="swish")
    model = SFocusModel(backbone, 5, config)
    first_order = SFocusModel(backbone, 5, config.replace(second_order=False))
    first_order.classifier.set_weights(model.classifier.get_weights())
    images, labels = batch(rng, n=4, dtype="float64")
    _, exact = gradients(model, images, labels)
    _, approximate = gradients(first_order, images, labels)

    def loss_along(variable, direction, step):
        original = variable.numpy()
        variable.assign(original + step * direction)
        value = model.objective(images, labels, training=True)["loss"].numpy()
        variable.assign(original)
        return value

    first_order_error = 0.0
    for variable, grad, grad_first in zip(model.trainable_variables, exact, approximate):
        direction = rng.normal(size=variable.shape)
        h = 1e-6
        numeric = (loss_along(variable, direction, h) - loss_along(variable, direction, -h)) / (2 * h)
        assert np.sum(grad.numpy() * direction) == pytest.approx(numeric, rel=1e-5, abs=1e-9), \
            variable.path
        first_order_error += abs(np.sum(grad_first.numpy() * direction) - numeric)
    # The first-order variant is not the true gradient of the objective.
    assert first_order_error > 1e-3


def test_jit_on_and_off_train_to_the_same_weights(rng):
    images, labels = batch(rng)
    reference = SFocusModel(tiny_backbone(), 5)
    start = reference.get_weights()
    results = {}
    for jit in (False, True):
        model = SFocusModel(tiny_backbone(), 5)
        model.set_weights(start)
        model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=jit)
        assert model.xla_compiled is jit
        logs = [model.train_on_batch(images, labels, return_dict=True) for _ in range(2)]
        results[jit] = (logs, model.get_weights())
    for key in results[False][0][-1]:
        assert results[True][0][-1][key] == pytest.approx(results[False][0][-1][key], rel=1e-4)
    for w_off, w_on in zip(results[False][1], results[True][1]):
        np.testing.assert_allclose(w_on, w_off, rtol=1e-4, atol=1e-5)


def test_baseline_is_a_plain_keras_step(rng, monkeypatch):
    images, labels = batch(rng)
    backbone = tiny_backbone()
    model = SFocusModel(backbone, 5, SFocusConfig().baseline())
    plain = keras.Model(backbone.input, model.classifier(model.pool(backbone.output["last"])))

    def no_attention(*args, **kwargs):
        raise AssertionError("the baseline must not compute attention")

    monkeypatch.setattr(sfocus_tf.modeling.sfocus_model, "compute_attention", no_attention)
    terms, grads = gradients(model, images, labels)
    assert set(terms) == {"ce", "loss", "logits"}
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    with tf.GradientTape() as tape:
        loss = ce(labels, plain(images, training=True))
    plain_grads = tape.gradient(loss, plain.trainable_variables)
    assert len(grads) == len(plain_grads)
    for got, want in zip(grads, plain_grads):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    model.compile(optimizer="sgd")
    logs = model.fit(images, labels, batch_size=4, epochs=1, verbose=0).history
    assert "as_last" not in logs and "accuracy" in logs


def test_objective_adds_weight_decay_and_weights(rng):
    images, labels = batch(rng)
    config = SFocusConfig(w_as_last=0.5, w_as_in=2.0, w_ac=3.0)
    model = SFocusModel(tiny_backbone(weight_decay=0.1), 5, config)
    terms = model.objective(images, labels, training=True)
    decay = 0.1 * sum(np.sum(v.numpy() ** 2) for v in model.trainable_variables
                      if v.path.endswith("conv/kernel"))
    assert decay > 0
    expected = (terms["ce"] + 0.5 * terms["as_last"] + 2.0 * terms["as_inner"]
                + 3.0 * terms["ac"] + decay)
    np.testing.assert_allclose(terms["loss"], expected, rtol=1e-5)
    np.testing.assert_allclose(terms["l2"], decay, rtol=1e-5)  # logged as its own term


def test_training_computes_only_the_weighted_terms(rng):
    images, labels = batch(rng)
    model = SFocusModel(tiny_backbone(), 5, SFocusConfig(as_layers="last", w_ac=0.0))
    assert set(model.objective(images, labels, training=True)) == {
        "ce", "as_last", "loss", "logits", "empty_target", "empty_confusing"}
    # Consistency needs the last layer's target map for its mask, not its separability.
    model = SFocusModel(tiny_backbone(), 5, SFocusConfig(w_as_last=0.0, w_as_in=0.0))
    assert set(model.objective(images, labels, training=True)) == {
        "ce", "ac", "loss", "logits", "empty_target"}
    # Evaluation reports every term as a metric, weighted or not.
    assert {"as_inner", "ac"} <= set(model.objective(images, labels, training=False))


def test_fit_and_evaluate_report_every_term(rng):
    images, labels = batch(rng, n=16)
    model = SFocusModel(tiny_backbone(), 5)
    model.compile(optimizer="adam")
    history = model.fit(images, labels, batch_size=8, epochs=2, verbose=0,
                        validation_data=(images, labels)).history
    for name in ("loss", "ce", "as_last", "as_inner", "ac", "accuracy", "top5_accuracy"):
        assert len(history[name]) == 2 and np.isfinite(history[name]).all()
        assert np.isfinite(history["val_" + name]).all()
    assert history["top5_accuracy"][-1] == 1.0  # 5 classes: top-5 is always right
    small = SFocusModel(tiny_backbone(), 3)
    small.compile(optimizer="adam")
    assert "top5_accuracy" not in small.evaluate(images, labels % 3, return_dict=True, verbose=0)


def test_multi_label_training(rng):
    images, _ = batch(rng)
    labels = (rng.random((8, 5)) < 0.4).astype("float32")
    labels[:, 0] = 1.0
    model = SFocusModel(tiny_backbone(), 5, SFocusConfig(multi_label=True))
    model.compile(optimizer="adam")
    logs = model.fit(images, labels, batch_size=4, epochs=1, verbose=0).history
    assert np.isfinite(logs["loss"]).all() and 0.0 <= logs["accuracy"][0] <= 1.0
    with pytest.raises(tf.errors.InvalidArgumentError, match="0 or 1"):
        model.train_on_batch(images, labels * 2)


def test_keras_file_round_trip(rng, tmp_path):
    images, labels = batch(rng)
    config = SFocusConfig(sigma=0.4, normalize="minmax", w_ac=0.5)
    model = SFocusModel(tiny_backbone(), 5, config)
    model.compile(optimizer="adam")
    model.fit(images, labels, batch_size=4, epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, SFocusModel) and loaded.sfocus_config == config
    np.testing.assert_array_equal(loaded.predict(images, verbose=0), model.predict(images, verbose=0))
    ours, theirs = (m.objective(images, labels, training=False) for m in (model, loaded))
    for key in ("loss", "as_last", "as_inner", "ac"):
        np.testing.assert_allclose(theirs[key], ours[key], rtol=1e-6)
    loaded.fit(images, labels, batch_size=4, epochs=1, verbose=0)  # compiled and trainable


def test_bad_input_is_a_clear_error(rng):
    images, labels = batch(rng)
    model = SFocusModel(tiny_backbone(), 5)
    model.compile(optimizer="sgd")
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"labels out of range.*\[0, 4\]"):
        model.fit(images, np.full(8, 7), batch_size=4, verbose=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"out of range \[0, 4\]"):
        model.train_on_batch(images, np.full(8, -1))
    with pytest.raises(ValueError, match=r"images must be a batch of shape \[B, H, W, C\]"):
        model.predict(images[:, :, :, 0], verbose=0)
    with pytest.raises(ValueError, match="One-hot labels"):
        model.train_on_batch(images, np.eye(5)[labels])
    with pytest.raises(ValueError, match="takes no loss"):
        model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="backbone was built for 7 classes"):
        SFocusModel(tiny_backbone(num_classes=7), 5)
    inputs = keras.Input(SHAPE)
    plain = keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs))
    with pytest.raises(ValueError, match="must output a dict"):
        SFocusModel(plain, 5)
