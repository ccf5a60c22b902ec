"""The readings of the method: class score, map activation, attention warm-up,
empty maps, and the fixed Grad-CAM reading evaluation measures with."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import numpy_reference as ref
from sfocus_tf import SFocusConfig, SFocusModel, attention_maps
from sfocus_tf.modeling import losses
from sfocus_tf.modeling.gradcam import activate, class_scores
from sfocus_tf.modeling.sfocus_config import GRADCAM_READING
from sfocus_tf.evaluation.evaluate import attention_statistics
from tiny import tiny_backbone

READINGS = [dict(class_score=score, map_activation=activation, gradcam_weights=weights)
            for score in ("logit", "log_prob", "logit_difference")
            for activation in ("relu", "abs", "softmax")
            for weights in ("mean",)] + [
    dict(class_score="log_prob", map_activation="relu", gradcam_weights="relu_mean")]


def numpy_score(logits, target, confusing, class_score, role):
    """One example's score, written out: logits [N], target and confusing class ids."""
    if class_score == "log_prob":
        logits = logits - np.log(np.sum(np.exp(logits - logits.max()))) - logits.max()
    mine, other = (target, confusing) if role == "target" else (confusing, target)
    if class_score == "logit_difference":
        return logits[mine] - logits[other]
    return logits[mine]


def test_class_scores_match_numpy(rng):
    logits = rng.normal(size=(5, 6)).astype("float32")
    target, confusing = rng.integers(0, 6, 5), rng.integers(0, 6, 5)
    for class_score in ("logit", "log_prob", "logit_difference"):
        got = class_scores(tf.constant(logits), target=tf.one_hot(target, 6),
                           confusing=tf.one_hot(confusing, 6), class_score=class_score)
        for role, value in zip(("target", "confusing"), got):
            expected = [numpy_score(logits[b].astype(np.float64), target[b], confusing[b],
                                    class_score, role) for b in range(5)]
            np.testing.assert_allclose(value.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_multi_label_log_prob_is_log_sigmoid(rng):
    logits = rng.normal(size=(3, 4)).astype("float32")
    positives = np.array([[1, 0, 1, 0], [0, 1, 0, 0], [1, 1, 1, 0]], "float32")
    target, _ = class_scores(tf.constant(logits), target=tf.constant(positives),
                             confusing=tf.zeros_like(positives), class_score="log_prob",
                             multi_label=True)
    expected = (positives * -np.log1p(np.exp(-logits))).sum(-1)
    np.testing.assert_allclose(target.numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("activation", ["relu", "abs", "softmax"])
def test_activation_matches_numpy(rng, activation):
    pre = rng.normal(size=(3, 4, 5)).astype("float32") * 0.3
    np.testing.assert_allclose(activate(tf.constant(pre), activation).numpy(),
                               ref.activate(pre.astype(np.float64), activation),
                               rtol=1e-5, atol=1e-7)


def per_example_maps(model, images, target, confusing, reading):
    """Every map written independently: one tape per example and role, inference mode."""
    maps = {}
    for role in ("target", "confusing"):
        for layer in ("inner", "last"):
            maps[f"{role}_{layer}"] = []
        for image, t, c in zip(images, target, confusing):
            with tf.GradientTape(persistent=True) as tape:
                features = model.backbone(image[None], training=False)
                z = model.classifier(model.pool(features["last"]))[0]
                if reading["class_score"] == "log_prob":
                    z = tf.nn.log_softmax(z)
                mine, other = (t, c) if role == "target" else (c, t)
                score = z[mine] - z[other] if reading["class_score"] == "logit_difference" \
                    else z[mine]
            for layer in ("inner", "last"):
                grad = tape.gradient(score, features[layer]).numpy()
                raw = ref.gradcam(features[layer].numpy().astype(np.float64), grad,
                                  reading["gradcam_weights"], reading["map_activation"])
                maps[f"{role}_{layer}"].append(ref.normalize(raw)[0])
    return {key: np.stack(value) for key, value in maps.items()}


@pytest.mark.parametrize("reading", READINGS, ids=lambda r: "-".join(r.values()))
def test_every_reading_matches_an_independent_tape(rng, reading):
    model = SFocusModel(tiny_backbone(), 5, SFocusConfig(**reading))
    images = rng.normal(size=(4, 12, 12, 3)).astype("float32")
    labels = rng.integers(0, 5, size=4)
    out = attention_maps(model, images, labels)
    expected = per_example_maps(model, images, labels, out["confusing_class"].numpy(), reading)
    for key, value in expected.items():
        np.testing.assert_allclose(out[key].numpy(), value, atol=3e-5, err_msg=key)


def test_logit_difference_maps_are_disjoint_by_construction(rng):
    """With mean weights and relu, the confusing map is relu(-x) of the target's x:
    separability is 0 whatever the network; only consistency is left to train."""
    model = SFocusModel(tiny_backbone(), 5, SFocusConfig(class_score="logit_difference",
                                                         map_activation="relu",
                                                         gradcam_weights="mean"))
    out = attention_maps(model, rng.normal(size=(4, 12, 12, 3)).astype("float32"), [0, 1, 2, 3])
    for layer in ("last", "inner"):
        both = np.minimum(out[f"target_{layer}"].numpy(), out[f"confusing_{layer}"].numpy())
        assert both.max() < 1e-6


def test_empty_maps_match_numpy():
    maps = np.zeros((4, 3, 3), "float32")
    maps[1, 0, 0] = 1.0  # a normalised map with a peak
    maps[2] = 0.3  # after max normalisation only a raw peak below eps gives this
    maps[3, 2, 2] = 0.6
    for normalize in ("max", "none"):
        np.testing.assert_array_equal(losses.empty_maps(maps, normalize).numpy(),
                                      ref.empty(maps, normalize))
    np.testing.assert_array_equal(losses.empty_maps(maps).numpy(), [1, 0, 1, 0])


def test_training_and_validation_report_empty_maps(rng):
    model = SFocusModel(tiny_backbone(), 5, SFocusConfig())
    model.compile(keras.optimizers.SGD(0.01))
    x = rng.normal(size=(8, 12, 12, 3)).astype("float32")
    y = rng.integers(0, 5, size=8)
    history = model.fit(x, y, validation_data=(x, y), batch_size=4, epochs=1, verbose=0).history
    maps = attention_maps(model, x, y)
    for key in ("empty_target", "empty_confusing", "val_empty_target", "val_empty_confusing"):
        assert 0.0 <= history[key][0] <= 1.0
    # validation runs in inference mode on the final weights: the same maps
    expected = ref.empty(maps["confusing_last"].numpy()).mean()
    assert history["val_empty_confusing"][0] == pytest.approx(expected)


@pytest.mark.parametrize("step, warmup, ramp", [
    (0, 0, 0), (3, 5, 0), (5, 5, 0), (4, 5, 4), (5, 5, 4), (7, 5, 4), (8, 5, 4), (50, 5, 4)])
def test_attention_scale_matches_numpy(step, warmup, ramp):
    config = SFocusConfig(warmup_steps=warmup, ramp_steps=ramp)
    assert float(config.attention_scale(step)) == pytest.approx(
        ref.attention_scale(step, warmup, ramp))


def test_warmup_steps_train_like_the_baseline_then_switch_on(rng):
    """During warm-up the step is the baseline's; after it, SFOCUS's. The counter is
    the optimizer's, so it survives a .keras round trip."""
    x = rng.normal(size=(4, 12, 12, 3)).astype("float32")
    y = rng.integers(0, 5, size=4)

    def trained(config, steps, start=None):
        model = SFocusModel(tiny_backbone(), 5, config)
        model.compile(keras.optimizers.SGD(0.05))
        if start is not None:
            model.set_weights(start)
        model.fit(x, y, batch_size=4, epochs=steps, verbose=0)
        return model

    start = SFocusModel(tiny_backbone(), 5, SFocusConfig()).get_weights()
    warm = trained(SFocusConfig(warmup_steps=2), 2, start)
    plain = trained(SFocusConfig().baseline(), 2, start)
    for a, b in zip(warm.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # one step later the attention terms count: the weights part ways
    warm.fit(x, y, batch_size=4, epochs=1, verbose=0)
    plain.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert max(np.abs(a - b).max() for a, b in
               zip(warm.get_weights(), plain.get_weights())) > 1e-4


def test_warmup_survives_save_and_load(tmp_path, rng):
    model = SFocusModel(tiny_backbone(), 5, SFocusConfig(warmup_steps=3, ramp_steps=2))
    model.compile(keras.optimizers.SGD(0.05))
    x = rng.normal(size=(4, 12, 12, 3)).astype("float32")
    model.fit(x, rng.integers(0, 5, size=4), batch_size=2, epochs=2, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.sfocus_config == model.sfocus_config
    assert int(loaded.optimizer.iterations) == 4
    assert float(loaded._attention_scale(training=True)) == pytest.approx(
        ref.attention_scale(4, 3, 2))


def test_evaluation_measures_every_reading_with_standard_gradcam(rng):
    """Same weights, another training reading: the same measured overlap and maps."""
    images = rng.normal(size=(6, 12, 12, 3)).astype("float32")
    labels = rng.integers(0, 5, size=6)
    standard = SFocusModel(tiny_backbone(), 5, SFocusConfig())
    other = SFocusModel(tiny_backbone(), 5, SFocusConfig(
        map_activation="softmax", class_score="log_prob", gradcam_weights="relu_mean"))
    other.set_weights(standard.get_weights())
    a, b = attention_statistics(standard, images, labels), attention_statistics(other, images, labels)
    for key in ("overlap", "consistency", "target_last", "confusing_last", "empty_confusing"):
        np.testing.assert_allclose(a[key].numpy(), b[key].numpy(), atol=1e-6)
    own = attention_maps(other, images, labels)
    assert np.abs(own["target_last"].numpy() - a["target_last"].numpy()).max() > 1e-3
    assert set(GRADCAM_READING) <= set(SFocusConfig().to_dict())


@pytest.mark.parametrize("field, value, message", [
    ("class_score", "prob", "'logit', 'log_prob', 'logit_difference'"),
    ("map_activation", "gelu", "'softmax', 'relu', 'abs'"),
    ("warmup_steps", -1, "integer >= 0"),
    ("ramp_steps", 2.5, "integer >= 0"),
    ("warmup_steps", True, "integer >= 0"),
])
def test_invalid_reading_names_field(field, value, message):
    with pytest.raises(ValueError) as error:
        SFocusConfig(**{field: value})
    assert f"SFocusConfig.{field}" in str(error.value) and message in str(error.value)


def test_reading_fields_round_trip_and_accept_whole_floats():
    config = SFocusConfig(class_score="log_prob", map_activation="abs", warmup_steps=10.0,
                          ramp_steps=5)
    assert config.warmup_steps == 10 and isinstance(config.warmup_steps, int)
    assert SFocusConfig.from_dict(config.to_dict()) == config
