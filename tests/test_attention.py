import numpy as np
import pytest
import tensorflow as tf

import numpy_reference as ref
from sfocus_tf import SFocusConfig, SFocusModel, attention_maps
from sfocus_tf.modeling.gradcam import cam, compute_attention, normalize_maps, select_classes
from tiny import tiny_backbone


def make_model(num_classes=5, **config):
    """Grad-CAM proper (relu maps, mean gradient weights) unless a test asks otherwise."""
    config.setdefault("map_activation", "relu")
    config.setdefault("gradcam_weights", "mean")
    return SFocusModel(tiny_backbone(), num_classes, SFocusConfig(**config))


def per_example_gradcam(model, images, classes, weighting):
    """Grad-CAM written independently: one tape per example, inference mode."""
    maps = {"inner": [], "last": []}
    for image, cls in zip(images, classes):
        with tf.GradientTape(persistent=True) as tape:
            features = model.backbone(image[None], training=False)
            score = model.classifier(model.pool(features["last"]))[0, cls]
        for layer in maps:
            grad = tape.gradient(score, features[layer]).numpy()
            maps[layer].append(ref.gradcam(features[layer].numpy(), grad, weighting)[0])
    return {layer: np.stack(value) for layer, value in maps.items()}


@pytest.mark.parametrize("weighting", ["mean", "relu_mean"])
def test_attention_maps_match_independent_tape(rng, weighting):
    model = make_model(gradcam_weights=weighting)
    images = rng.normal(size=(6, 12, 12, 3)).astype("float32")
    labels = rng.integers(0, 5, size=6)
    out = attention_maps(model, images, labels)
    np.testing.assert_array_equal(out["target_class"].numpy(), labels)
    logits = model(images).numpy()
    runner_up = np.where(np.eye(5)[labels] > 0, -np.inf, logits).argmax(-1)
    np.testing.assert_array_equal(out["confusing_class"].numpy(), runner_up)
    for role, classes in (("target", labels), ("confusing", runner_up)):
        expected = per_example_gradcam(model, images, classes, weighting)
        for layer in ("inner", "last"):
            got = out[f"{role}_{layer}"].numpy()
            assert got.shape == expected[layer].shape
            np.testing.assert_allclose(got, ref.normalize(expected[layer]), atol=2e-5)


def test_closed_form_cam_equals_tape_gradcam_at_last_layer(rng):
    model = make_model()
    images = tf.constant(rng.normal(size=(4, 12, 12, 3)), tf.float32)
    indicator = tf.one_hot([0, 3, 1, 4], 5)
    for weighting in ("mean", "relu_mean"):
        with tf.GradientTape() as tape:
            _, last = model.features(images)
            tape.watch(last)
            score = tf.reduce_sum(model.head(last) * indicator)
        # cam() goes through gradcam(): check it against the NumPy reference as well
        from_tape = ref.gradcam(last.numpy(), tape.gradient(score, last).numpy(), weighting)
        closed = cam(last, model.classifier.kernel, indicator, weighting=weighting)
        np.testing.assert_allclose(closed.numpy(), from_tape, rtol=1e-5, atol=1e-7)


def test_labels_none_uses_top1_and_runner_up(rng):
    model = make_model()
    images = rng.normal(size=(8, 12, 12, 3)).astype("float32")
    out = attention_maps(model, images)
    order = np.argsort(-model(images).numpy(), axis=-1)
    np.testing.assert_array_equal(out["target_class"].numpy(), order[:, 0])
    np.testing.assert_array_equal(out["confusing_class"].numpy(), order[:, 1])
    for key in ("target_last", "confusing_last", "target_inner", "confusing_inner"):
        assert np.all(np.isfinite(out[key].numpy()))
        assert out[key].numpy().max() <= 1.0 + 1e-6


def test_select_classes_multi_label():
    logits = tf.constant([[3.0, 2.0, 5.0, 1.0], [0.0, -1.0, -2.0, 4.0]])
    labels = tf.constant([[1, 0, 1, 0], [0, 1, 1, 0]])
    target, confusing, target_class, confusing_class = select_classes(logits, labels, True)
    np.testing.assert_array_equal(target.numpy(), labels.numpy())
    np.testing.assert_array_equal(confusing_class.numpy(), [1, 3])  # best negative
    np.testing.assert_array_equal(target_class.numpy(), [2, 1])  # best positive
    np.testing.assert_array_equal(confusing.numpy(), np.eye(4)[[1, 3]])


def best_class(logits, candidates):
    """NumPy: the highest-logit candidate per row (first on ties), -1 without one."""
    best = [int(np.flatnonzero(c)[np.argmax(row[c])]) if c.any() else -1
            for row, c in zip(logits, candidates)]
    return np.array(best)


@pytest.mark.parametrize("dtype, big", [("float32", 1e30), ("float64", 1e300),
                                        ("bfloat16", 1e30), ("float16", 6e4)])
def test_select_classes_never_picks_an_excluded_class(dtype, big):
    """min(logits) - 1 == min(logits) for big logits: the label came back as the
    confusing class, a negative as the multi-label target."""
    inf = np.inf
    logits = tf.cast(tf.constant([[big, big, big], [big, big, -big], [0.0, -inf, -inf],
                                  [-inf, -inf, -inf]], tf.float64), dtype)
    _, confusing, target_class, confusing_class = select_classes(logits, [0, 1, 0, 2])
    np.testing.assert_array_equal(target_class, [0, 1, 0, 2])
    np.testing.assert_array_equal(confusing_class, [1, 0, 1, 0])
    np.testing.assert_array_equal(confusing, np.eye(3)[[1, 0, 1, 0]])
    labels = tf.constant([[0, 1, 0], [0, 0, 1], [1, 0, 1], [0, 1, 1]])
    _, _, target_class, confusing_class = select_classes(logits, labels, multi_label=True)
    np.testing.assert_array_equal(target_class, [1, 2, 0, 1])
    np.testing.assert_array_equal(confusing_class, [0, 0, 1, 0])


def test_select_classes_multi_label_without_positive_or_negative_labels(rng):
    logits = rng.normal(size=(64, 4)) * rng.choice([1.0, 1e30], size=(64, 1))
    labels = rng.integers(0, 2, size=(64, 4))
    labels[:8], labels[8:16] = 1, 0  # no negative label / no positive label
    target, confusing, target_class, confusing_class = select_classes(
        tf.constant(logits, tf.float32), labels, multi_label=True)
    logits32 = logits.astype("float32")
    np.testing.assert_array_equal(target_class, best_class(logits32, labels > 0))
    np.testing.assert_array_equal(confusing_class, best_class(logits32, labels == 0))
    assert set(target_class[8:16].numpy()) == {-1} and set(confusing_class[:8].numpy()) == {-1}
    np.testing.assert_array_equal(target, labels)
    np.testing.assert_array_equal(confusing, (np.arange(4) == confusing_class.numpy()[:, None]))


def test_examples_without_target_or_confusing_class_get_no_attention_terms(rng):
    """The batch mean counts such an example as 0 in the terms that need the missing
    class (BatchNorm in inference mode: examples are independent)."""
    model = SFocusModel(tiny_backbone(), 5, SFocusConfig(multi_label=True))
    images = tf.constant(rng.normal(size=(3, 12, 12, 3)), tf.float32)
    labels = tf.constant([[1, 0, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], tf.float32)
    alone = [model.objective(images[i:i + 1], labels[i:i + 1]) for i in range(2)]
    batch = model.objective(images, labels)
    for term in ("as_last", "as_inner", "ac"):
        assert abs(float(alone[0][term])) > 0.01  # the first example's terms are not zero
    for term in ("as_last", "as_inner"):
        np.testing.assert_allclose(batch[term], alone[0][term] / 3, rtol=1e-5, err_msg=term)
    # The all-positive example has a target: it keeps its consistency term.
    np.testing.assert_allclose(batch["ac"], (alone[0]["ac"] + alone[1]["ac"]) / 3, rtol=1e-5)
    # relu maps of a missing class are zero everywhere: not counted as empty maps.
    relu = SFocusModel(tiny_backbone(), 5, SFocusConfig(multi_label=True,
                                                         map_activation="relu"))
    edges = relu.objective(images[1:], labels[1:])
    assert float(edges["empty_confusing"]) == float(edges["empty_target"]) == 0.0


@pytest.mark.parametrize("method", ["max", "minmax", "none"])
def test_normalize_matches_numpy(rng, method):
    maps = np.maximum(rng.normal(size=(3, 4, 5)), 0).astype("float32")
    maps[1] = 0.0  # an all-zero map stays finite
    got = normalize_maps(tf.constant(maps), method).numpy()
    np.testing.assert_allclose(got, ref.normalize(maps, method), rtol=1e-5, atol=1e-6)


def test_multi_label_target_map_sums_positive_scores(rng):
    model = make_model(multi_label=True)
    images = tf.constant(rng.normal(size=(3, 12, 12, 3)), tf.float32)
    labels = tf.constant([[1, 0, 1, 0, 0], [0, 1, 0, 0, 0], [1, 1, 1, 0, 0]], tf.float32)
    out = compute_attention(model, images, labels, maps=("target_last",))
    _, last = model.features(images)
    w = model.classifier.kernel.numpy()
    expected = np.maximum(np.einsum("bhwk,bk->bhw", last.numpy(), labels.numpy() @ w.T), 0)
    np.testing.assert_allclose(out["target_last"].numpy(), ref.normalize(expected), atol=1e-5)


def test_maps_of_unknown_spatial_size_are_refused():
    unknown = tf.TensorSpec((None, None, None, 3))
    with pytest.raises(ValueError, match=r"cam \(Grad-CAM.*known height and width"):
        tf.function(lambda f: cam(f, tf.ones((3, 2)), tf.ones((1, 2)))).get_concrete_function(
            unknown)


def test_attention_maps_reject_bad_input(rng):
    model = make_model()
    with pytest.raises(ValueError, match=r"\[B, H, W, C\]"):
        attention_maps(model, np.zeros((12, 12, 3), "float32"))
    with pytest.raises(ValueError, match="axis 3 differs"):
        attention_maps(model, np.zeros((2, 12, 12, 1), "float32"))
    with pytest.raises(ValueError, match="labels out of range"):  # eager: at once
        attention_maps(model, np.zeros((2, 12, 12, 3), "float32"), [1, 5])
    with pytest.raises(ValueError, match="Unknown attention map"):
        compute_attention(model, tf.zeros((1, 12, 12, 3)), maps=("target_middle",))


@pytest.mark.parametrize("decouple", [False, True])
def test_decouple_batch_norm_makes_training_maps_per_example(rng, decouple):
    """In training mode BatchNorm's batch statistics couple the examples' Grad-CAM
    gradients: example 0's inner map moves when the other examples' target classes
    change. decouple_batch_norm removes exactly that; the forward pass is unchanged."""
    model = make_model(decouple_batch_norm=decouple)
    images = tf.constant(rng.normal(size=(6, 12, 12, 3)), tf.float32)
    labels = rng.integers(0, 5, size=6)
    others = labels.copy()
    others[1:] = (labels[1:] + 1) % 5
    maps = [compute_attention(model, images, y, training=True, maps=("target_inner",))
            ["target_inner"].numpy() for y in (labels, others)]
    moved = np.abs(maps[0][0] - maps[1][0]).max()
    if decouple:
        assert moved < 1e-6
    else:
        assert moved > 1e-4
    coupled = make_model()
    coupled.set_weights(model.get_weights())
    ours, theirs = (m.objective(images, labels, training=True) for m in (model, coupled))
    np.testing.assert_allclose(ours["ce"], theirs["ce"], rtol=1e-6)
    np.testing.assert_allclose(ours["logits"], theirs["logits"], rtol=1e-5, atol=1e-6)


def test_decouple_batch_norm_needs_our_batch_norm():
    import keras
    from keras_models import Backbone
    inputs = keras.Input((8, 8, 1))
    inner = keras.layers.BatchNormalization(name="stock_bn")(keras.layers.Conv2D(2, 3)(inputs))
    backbone = Backbone(inputs, inner, keras.layers.Conv2D(2, 3)(inner))
    with pytest.raises(ValueError, match="decouple_batch_norm=True needs keras_models.BatchNorm"):
        SFocusModel(backbone, 3, SFocusConfig(decouple_batch_norm=True))


def test_scale_free_softmax_temperature_matches_numpy_and_ignores_the_logit_scale(rng):
    from sfocus_tf.modeling.gradcam import activate
    scores = rng.normal(size=(3, 7, 7)).astype("float64")
    got = activate(tf.constant(scores), "softmax", temperature="spatial_std").numpy()
    np.testing.assert_allclose(got, ref.activate(scores, "softmax", "spatial_std"),
                               rtol=1e-6, atol=1e-9)
    scaled = activate(tf.constant(7.0 * scores), "softmax", temperature="spatial_std")
    np.testing.assert_allclose(scaled.numpy(), got, rtol=1e-6, atol=1e-9)
    # at one logit's temperature the same scaling turns the map into a point
    sharp = normalize_maps(activate(tf.constant(7.0 * scores), "softmax")).numpy()
    assert (sharp > 0.5).sum(axis=(1, 2)).max() <= 2
    assert ((got / got.max(axis=(1, 2), keepdims=True)) > 0.5).sum(axis=(1, 2)).min() >= 3
    with pytest.raises(ValueError, match="map_temperature"):
        activate(tf.constant(scores), "softmax", temperature="hot")
